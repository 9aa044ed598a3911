//! The proxy-wasm ABI's byte formats, as pure functions the shim's host calls use: header maps
//! (a callout's headers, a local reply's, the maps Envoy returns) and property paths.
//!
//! Why here and not the SDK's: the SDK's host-call wrappers panic on any status they do not
//! expect, and a panic traps the VM, which then fails every later request of its worker. The
//! shim makes its own calls (`filter/src/abi.rs`) and needs these encodings, checked instead of
//! indexed: a malformed map from the host gives `None`, never a trap.
//!
//! Header map (proxy-wasm ABI 0.2): `u32` pair count, then per pair `u32` name length and `u32`
//! value length, then per pair the name, a NUL, the value, a NUL; integers little-endian.

/// A header map in the ABI's layout; `None` if a count or length does not fit a `u32`.
pub fn serialize_map(pairs: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    let strings: usize = pairs
        .iter()
        .map(|(n, v)| n.len().saturating_add(v.len()).saturating_add(2))
        .fold(0, usize::saturating_add);
    let size = pairs.len().saturating_mul(8).saturating_add(4);
    let mut out = Vec::with_capacity(size.saturating_add(strings));
    out.extend_from_slice(&u32::try_from(pairs.len()).ok()?.to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&u32::try_from(name.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    Some(out)
}

/// Reads a `u32` at `at`.
fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let end = at.checked_add(4)?;
    let word: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// A header map from the ABI's layout (names lossily as text); empty bytes are an empty map;
/// `None` when the layout does not hold together.
pub fn deserialize_map(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32_at(bytes, 0)?;
    let mut strings = count.checked_mul(8)?.checked_add(4)?;
    if strings > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for n in 0..count {
        let lengths = n.checked_mul(8)?.checked_add(4)?;
        let name_len = u32_at(bytes, lengths)?;
        let value_len = u32_at(bytes, lengths.checked_add(4)?)?;
        let name_end = strings.checked_add(name_len)?;
        let name = bytes.get(strings..name_end)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let value = bytes.get(value_start..value_end)?;
        pairs.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
        strings = value_end.checked_add(1)?;
    }
    Some(pairs)
}

/// A property path in the ABI's layout: its segments joined by NUL (`["source", "address"]`).
pub fn property_path(segments: &[&str]) -> Vec<u8> {
    segments.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_round_trips_in_the_abi_layout() {
        let pairs: [(&str, &[u8]); 3] =
            [(":status", b"200"), ("x-empty", b""), ("b", b"\xff\x00z")];
        let bytes = serialize_map(&pairs).unwrap();
        assert_eq!(&bytes[..4], &3u32.to_le_bytes());
        assert_eq!(&bytes[4..12], &[7, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&bytes[28..40], b":status\x00200\x00");
        let back = deserialize_map(&bytes).unwrap();
        let expected: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        assert_eq!(back, expected);
        assert_eq!(deserialize_map(&serialize_map(&[]).unwrap()), Some(vec![]));
        assert_eq!(deserialize_map(b""), Some(vec![]));
    }

    #[test]
    fn a_malformed_map_is_none_at_every_cut_and_with_lying_lengths() {
        let bytes = serialize_map(&[("name", b"value"), ("k", b"v")]).unwrap();
        for cut in 1..bytes.len() - 1 {
            assert_eq!(deserialize_map(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut huge_count = bytes.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(deserialize_map(&huge_count), None);
        let mut long_value = bytes;
        long_value[8..12].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(deserialize_map(&long_value), None);
    }

    #[test]
    fn a_property_path_joins_its_segments_with_nul() {
        assert_eq!(property_path(&["source", "address"]), b"source\0address");
        assert_eq!(property_path(&["ptk_model"]), b"ptk_model");
        assert_eq!(property_path(&[]), b"");
    }
}
