//! The pure part: parse a module, drop exports by name, re-emit it.

use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
use wasmparser::{Encoding, ExternalKind, Parser, Payload};

/// A pruned module and which of the requested names it actually exported.
#[derive(Debug)]
pub struct Pruned {
    /// The module without the dropped exports.
    pub module: Vec<u8>,
    /// Names that were exported and are gone now (empty for an already pruned module).
    pub dropped: Vec<String>,
}

/// Export names from a list file: the first word of each line (later words are notes for
/// people and tests), `#` starts a comment, blank lines are ignored.
pub fn parse_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split('#').next()?.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn export_kind(kind: ExternalKind) -> ExportKind {
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
    }
}

/// Drops every export named in `names`; names the module does not export are ignored, so
/// pruning twice is harmless. Only core modules are accepted.
pub fn prune(bytes: &[u8], names: &[String]) -> Result<Pruned, String> {
    let mut out = Module::new();
    let mut dropped = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a valid wasm module: {e}"))?;
        match payload {
            Payload::Version { encoding, .. } if encoding != Encoding::Module => {
                return Err("a component, not a core module".to_string());
            }
            Payload::ExportSection(reader) => {
                let mut section = ExportSection::new();
                for export in reader {
                    let export = export.map_err(|e| format!("bad export section: {e}"))?;
                    if names.iter().any(|n| n == export.name) {
                        dropped.push(export.name.to_string());
                    } else {
                        section.export(export.name, export_kind(export.kind), export.index);
                    }
                }
                out.section(&section);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    let data = usize::try_from(range.start)
                        .ok()
                        .zip(usize::try_from(range.end).ok())
                        .and_then(|(start, end)| bytes.get(start..end))
                        .ok_or("a section lies outside the module")?;
                    out.section(&RawSection { id, data });
                }
            }
        }
    }
    Ok(Pruned {
        module: out.finish(),
        dropped,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use wasm_encoder::{
        CodeSection, CustomSection, Function, FunctionSection, Instruction, MemorySection,
        MemoryType, TypeSection,
    };

    /// A module with three exported functions, a memory and a custom section.
    fn sample() -> Vec<u8> {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut funcs = FunctionSection::new();
        for _ in 0..3 {
            funcs.function(0);
        }
        m.section(&funcs);
        let mut mem = MemorySection::new();
        mem.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        m.section(&mem);
        let mut exports = ExportSection::new();
        exports.export("memory", ExportKind::Memory, 0);
        exports.export("proxy_on_request_headers", ExportKind::Func, 0);
        exports.export("proxy_on_response_body", ExportKind::Func, 1);
        exports.export("proxy_on_log", ExportKind::Func, 2);
        m.section(&exports);
        let mut code = CodeSection::new();
        for _ in 0..3 {
            let mut f = Function::new([]);
            f.instruction(&Instruction::End);
            code.function(&f);
        }
        m.section(&code);
        m.section(&CustomSection {
            name: "producers".into(),
            data: b"kept as is".as_slice().into(),
        });
        m.finish()
    }

    fn exports(bytes: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            if let Payload::ExportSection(reader) = payload.unwrap() {
                names.extend(reader.into_iter().map(|e| e.unwrap().name.to_string()));
            }
        }
        names
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn drops_only_the_listed_exports_and_keeps_the_module_valid() {
        let out = prune(
            &sample(),
            &names(&["proxy_on_response_body", "proxy_on_log"]),
        )
        .unwrap();
        assert_eq!(
            out.dropped,
            names(&["proxy_on_response_body", "proxy_on_log"])
        );
        assert_eq!(
            exports(&out.module),
            names(&["memory", "proxy_on_request_headers"])
        );
        wasmparser::validate(&out.module).unwrap();
        let custom = b"kept as is";
        assert!(out.module.windows(custom.len()).any(|w| w == custom));
    }

    #[test]
    fn pruning_twice_changes_nothing_more() {
        let list = names(&["proxy_on_log", "not_exported_at_all"]);
        let once = prune(&sample(), &list).unwrap();
        assert_eq!(once.dropped, names(&["proxy_on_log"]));
        let twice = prune(&once.module, &list).unwrap();
        assert!(twice.dropped.is_empty());
        assert_eq!(twice.module, once.module);
    }

    #[test]
    fn an_empty_list_gives_back_an_identical_module() {
        let input = sample();
        assert_eq!(prune(&input, &[]).unwrap().module, input);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(prune(b"not wasm", &[]).is_err());
    }

    #[test]
    fn list_files_allow_comments_and_blank_lines() {
        let parsed =
            parse_names("# why\nproxy_on_log  on_log # no access log hook\n\n  proxy_on_done\n");
        assert_eq!(parsed, names(&["proxy_on_log", "proxy_on_done"]));
    }
}
