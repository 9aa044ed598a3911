//! Versions the filter reports and checks: its own release, the plugin configuration's
//! schema, and the wire protocol it speaks (`ptk_wire::WIRE_VERSION`).

use ptk_wire::WIRE_VERSION;

/// The filter's release (the workspace version).
pub const FILTER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The plugin configuration schema this filter reads (the config's optional `"version"`).
pub const CONFIG_SCHEMA: u32 = 1;

/// Refuses a configuration written for another schema, naming the field and both versions.
pub fn check_config_schema(version: Option<u32>) -> Result<(), String> {
    match version {
        None => Ok(()),
        Some(v) if v == CONFIG_SCHEMA => Ok(()),
        Some(v) => Err(format!(
            "version: this filter ({FILTER_VERSION}) reads plugin configuration schema \
             {CONFIG_SCHEMA}, got {v}"
        )),
    }
}

/// The line the filter logs when it starts.
pub fn start_line() -> String {
    format!(
        "ptk filter {FILTER_VERSION} started (plugin configuration schema {CONFIG_SCHEMA}, \
         wire protocol {WIRE_VERSION})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    #[test]
    fn config_version_is_optional_and_checked() {
        assert_eq!(FilterConfig::parse(b"{}").map(|c| c.version), Ok(None));
        assert_eq!(
            FilterConfig::parse(br#"{"version":1}"#).map(|c| c.version),
            Ok(Some(1))
        );
        let err = FilterConfig::parse(br#"{"version":2}"#).unwrap_err();
        assert!(err.starts_with("version: "), "{err}");
        assert!(err.contains("schema 1, got 2"), "{err}");
        assert!(FilterConfig::parse(br#"{"version":"1"}"#).is_err());
    }

    #[test]
    fn start_line_names_every_version() {
        let line = start_line();
        assert!(line.contains(env!("CARGO_PKG_VERSION")), "{line}");
        assert!(line.contains("schema 1"), "{line}");
        assert!(line.contains(WIRE_VERSION), "{line}");
    }

    #[test]
    fn callouts_carry_the_wire_version() {
        let config = FilterConfig::parse(b"{}").unwrap();
        let headers = crate::pipeline::callout_headers(&config, "secret", ptk_wire::CHECK_PATH);
        assert!(headers
            .iter()
            .any(|(k, v)| k == ptk_wire::WIRE_VERSION_HEADER && v == WIRE_VERSION));
    }
}
