//! The final guard: after the rewrite, no proxy token may remain anywhere in what goes
//! upstream. The strip covers every slot and spelling we know of; this catches the ones we do
//! not (a token pasted into another header, a path segment, a query parameter under a name no
//! one expects, an encoding). A request that would still carry one is refused with 400
//! instead of forwarded.
//!
//! It looks, in every outbound header name and value and in the path and query, for
//! - every value found in any credential slot (a second token in another slot is a proxy
//!   token too) and the identified token, at least [`MIN_GUARDED_LEN`] bytes long, on the
//!   paths that strip the slots ([`Sought::Slots`]);
//! - anything shaped like a generated token ([`TOKEN_PREFIX`] and [`TOKEN_BODY_LEN`] URL-safe
//!   characters, at the start of a text or after a byte that is not a letter or digit), on
//!   every path, so a generated token is caught outside any slot too, and on
//!   the pass-through paths whose slots go upstream as sent ([`Sought::Shape`]);
//!
//! ignoring ASCII case, in a fixed set of forms of each text ([`MAX_FORMS`], see
//! [`any_form`]): raw, then up to three layers of percent-decoding read as bytes and as text;
//! in the path a `+` also reads as a space.
//!
//! The cost is linear and small whatever the client sends: one Aho-Corasick search per form
//! (every needle at once; the crate's automata run in time linear in the text), over at most
//! [`MAX_FORMS`] forms per text, each no longer than the text; needles are bounded
//! (`credentials::MAX_GUARDED_LEN`, `MAX_GUARDED_VALUES`, `MAX_GUARDED_BYTES`) and so is the
//! head ([`MAX_OUTBOUND_BYTES`]): beyond a bound the request is refused unsearched. The common
//! case (a generated token, whose every credential form holds the token shape) needs no needle
//! at all: the shape search, with an automaton built once, finds them all. [`inspect`] counts
//! the work ([`Cost`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use crate::credentials::{guarded_values, MAX_GUARDED_LEN, MIN_GUARDED_LEN};
use crate::plan::RewritePlan;
use crate::request::RequestHead;

/// Percent-decoding layers looked through: a server decodes once, some frameworks twice.
pub const DECODE_LAYERS: usize = 3;

/// Most forms of one text searched: the text, the first layer read as text, then per further
/// layer the bytes read as text and, when it differs, the text decoded as text at every layer
/// ([`any_form`]).
pub const MAX_FORMS: usize = 2 * DECODE_LAYERS;

/// Most bytes written per byte of a text searched ([`Cost::decoded`]): a lowercase copy, a
/// copy with `+` as a space, and per layer a decoding and a reading as text of each chain (the
/// text chain starts at the second layer).
pub const MAX_COPIES: usize = 2 + 2 + 4 * (DECODE_LAYERS - 1);

/// Prefix of every generated proxy token, and its length after it (`ptk_wire`'s definitions).
pub use ptk_wire::{TOKEN_BODY_LEN, TOKEN_PREFIX};

/// Most bytes of header names and values, of the request head and of what the plan sets,
/// searched (Envoy's default limit on a request head is 60 KiB); a larger request is refused
/// unsearched.
pub const MAX_OUTBOUND_BYTES: usize = 64 * 1024;

/// Plan headers whose value comes from the client (the stripped path, the cleaned offer):
/// searched for the token shape. The others (`:authority`, the operator's headers, the real
/// key) are the operator's own and are searched only for the client's values.
const CLIENT_SET: [&str; 2] = [":path", "sec-websocket-protocol"];

/// The request as it goes upstream: the client's headers the plan leaves alone, then the
/// plan's own. (A set replaces every value of its header; a remove deletes every value.)
pub fn outbound<'a>(
    head: &'a RequestHead,
    plan: &'a RewritePlan,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    // Names are lowercase on both sides (RequestHead lowercases, plans are written so).
    let touched = |name: &str| {
        plan.remove.iter().any(|r| r == name) || plan.set.iter().any(|(n, _)| n == name)
    };
    head.iter()
        .filter(move |(name, _)| !touched(name))
        .chain(plan.set.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// What the guard looks for besides the generated-token shape, which it always looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sought<'a> {
    /// Every credential value in the client's slots (the plan strips them all) and the
    /// identified token, if any: the normal and cached forwards, upload legs.
    Slots(Option<&'a str>),
    /// The shape only: the slots hold a provider-minted credential that goes upstream as sent
    /// (the ephemeral pass-through, OpenAI client secrets).
    Shape,
}

/// Why the guard refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A credential value the client sent is still in what goes upstream.
    Credential,
    /// Something shaped like a generated proxy token is.
    TokenShape,
    /// Too large to search (credential values or the head beyond their bounds): refused
    /// unsearched.
    Oversized,
    /// The search could not be set up (never seen; fail closed).
    Unsearchable,
}

/// The work one inspection did, counted as it went: the cost bound tests and fuzzes this.
/// The counters add sizes of one bounded head (at most [`MAX_OUTBOUND_BYTES`] times
/// [`MAX_COPIES`]), nowhere near `usize::MAX`: they add saturating, which never saturates.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Bytes of header names and values in the head and in what the plan sets (what goes
    /// upstream is no more).
    pub outbound: usize,
    /// Texts (names, values) long enough to be searched.
    pub texts: usize,
    /// Forms searched.
    pub forms: usize,
    /// Bytes fed to the automaton (every form of every text).
    pub searched: usize,
    /// Bytes written by lowercasing, percent-decoding, reading bytes as text and reading `+`
    /// as a space: at most [`MAX_COPIES`] times the bytes of the texts searched.
    pub decoded: usize,
    /// Bytes of needles an automaton was built from for this request (0: the shape only,
    /// whose automaton is built once).
    pub needles: usize,
}

/// The guard's verdict and its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// Why the request may not go upstream; `None`: it may.
    pub finding: Option<Finding>,
    /// What finding out cost.
    pub cost: Cost,
}

/// True when the outbound request (`head` with `plan` applied) still holds `token`, any other
/// credential value the client sent, or a generated token anywhere; also (fail closed) when
/// the credential values or the head are beyond the bounds the guard searches.
pub fn leaks(head: &RequestHead, plan: &RewritePlan, token: &str) -> bool {
    inspect(head, plan, Sought::Slots(Some(token)))
        .finding
        .is_some()
}

/// [`leaks`] for a request whose slots go upstream as sent (the ephemeral pass-through, an
/// OpenAI client secret): only the generated-token shape is looked for.
pub fn leaks_relayed(head: &RequestHead, plan: &RewritePlan) -> bool {
    inspect(head, plan, Sought::Shape).finding.is_some()
}

/// The shape pattern's index in every automaton.
const SHAPE: usize = 0;

/// Needle sets of at most this many bytes keep their automata for the next request (a client
/// sends the same custom token again and again; building costs far more than searching).
const CACHED_BYTES: usize = 1024;

/// Automata kept per VM (each a few KiB at most).
const CACHED_SETS: usize = 8;

fn build<I, P>(patterns: I) -> Option<AhoCorasick>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    // Standard semantics (every match, overlapping); case-sensitive over lowercased needles
    // and texts (half the transitions of a case-insensitive automaton); a contiguous NFA:
    // built in time linear in the needles, searched in time linear in the text (a DFA costs
    // far more to build for a search that runs once, and its table grows with the needles).
    AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(patterns)
        .ok()
}

/// A request's automata: one for headers, and one for the path when a needle holds a space
/// or a `+` (then needles and path read `+` as a space).
struct Automata {
    header: AhoCorasick,
    path: Option<AhoCorasick>,
}

impl Automata {
    /// The automata of the shape and `own` (lowercase), built or from the cache.
    fn of(own: &[Vec<u8>], cost: &mut Cost) -> Option<Rc<Automata>> {
        let cacheable = own.iter().map(Vec::len).sum::<usize>() <= CACHED_BYTES;
        if cacheable {
            let cached = CACHE.with_borrow(|cache| {
                cache
                    .iter()
                    .find(|(key, _)| key.as_slice() == own)
                    .map(|(_, automata)| Rc::clone(automata))
            });
            if cached.is_some() {
                return cached;
            }
        }
        cost.needles = own.iter().map(Vec::len).sum();
        let patterns =
            std::iter::once(TOKEN_PREFIX.as_bytes()).chain(own.iter().map(Vec::as_slice));
        let header = build(patterns)?;
        let path = if own.iter().any(|n| n.contains(&b' ') || n.contains(&b'+')) {
            let folded = own.iter().map(|n| {
                let mut n = n.clone();
                plus_to_space(&mut n);
                n
            });
            Some(build(
                std::iter::once(TOKEN_PREFIX.as_bytes().to_vec()).chain(folded),
            )?)
        } else {
            None
        };
        let automata = Rc::new(Automata { header, path });
        if cacheable {
            CACHE.with_borrow_mut(|cache| {
                cache.insert(0, (own.to_vec(), Rc::clone(&automata)));
                cache.truncate(CACHED_SETS);
            });
        }
        Some(automata)
    }
}

/// A needle set (lowercase needles) and its automata.
type CachedSet = (Vec<Vec<u8>>, Rc<Automata>);

thread_local! {
    /// The automaton of the shape alone (most requests need no other), built once per VM.
    static SHAPE_ONLY: Option<Rc<Automata>> =
        build([TOKEN_PREFIX]).map(|header| Rc::new(Automata { header, path: None }));
    /// The latest small needle sets' automata, newest first.
    static CACHE: RefCell<Vec<CachedSet>> = const { RefCell::new(Vec::new()) };
}

fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// True when the shape may start at `at` in `text`: at its start or after a byte that is not
/// an ASCII letter or digit. A generated token is a value of its own (after `=`, a space, `/`,
/// `-`, `.`, `,`…); a `ptk_` glued to letters or digits is a random id or a base64url blob
/// that happens to hold those bytes (about 3 in 100,000 random 100-character ids hold `ptk_`
/// somewhere; after `-` or `_` only, 32 times fewer), not a token.
fn starts_shape(text: &[u8], at: usize) -> bool {
    at.checked_sub(1)
        .and_then(|before| text.get(before))
        .is_none_or(|b| !b.is_ascii_alphanumeric())
}

/// Bytes of a generated token.
const SHAPE_LEN: usize = TOKEN_PREFIX.len() + TOKEN_BODY_LEN;

/// Every generated-token shape in `text` (the prefix in any case, at a boundary,
/// [`starts_shape`], and [`TOKEN_BODY_LEN`] URL-safe bytes), whole. A plain scan, linear: the
/// prefix cannot overlap itself, so each byte is read at most
/// `TOKEN_BODY_LEN / TOKEN_PREFIX.len()` times as part of a body.
fn shapes(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let prefix = TOKEN_PREFIX.as_bytes();
    text.windows(SHAPE_LEN)
        .enumerate()
        .filter(move |(at, w)| {
            starts_shape(text, *at)
                && w.split_at_checked(prefix.len()).is_some_and(|(p, body)| {
                    p.eq_ignore_ascii_case(prefix) && body.iter().all(|b| url_safe(*b))
                })
        })
        .map(|(_, w)| w)
}

fn plus_to_space(bytes: &mut [u8]) {
    for b in bytes.iter_mut().filter(|b| **b == b'+') {
        *b = b' ';
    }
}

/// `text` with ASCII letters lowercased (borrowed when it has no uppercase one).
fn lowercase<'t>(text: &'t [u8], cost: &mut Cost) -> Cow<'t, [u8]> {
    if !text.iter().any(u8::is_ascii_uppercase) {
        return Cow::Borrowed(text);
    }
    cost.decoded = cost.decoded.saturating_add(text.len());
    Cow::Owned(text.to_ascii_lowercase())
}

/// What one request's guard searches with.
struct Needles {
    automata: Rc<Automata>,
    /// The generated tokens the values hold (lowercase, sorted): found wherever the prefix is,
    /// glued to letters or digits or not.
    tokens: Vec<Vec<u8>>,
    /// Shortest text that can hold a match.
    shortest: usize,
}

impl Needles {
    /// The automata for `values` (plus the shape). A value that holds the shape holds a
    /// generated token, which is found wherever the prefix is (the prefix's matches are
    /// looked up in `tokens`), so the value needs no pattern of its own: most requests need no
    /// automaton but the shape's, built once.
    fn new(values: &[&str], cost: &mut Cost) -> Option<Needles> {
        let mut own: Vec<Vec<u8>> = Vec::new();
        let mut tokens: Vec<Vec<u8>> = Vec::new();
        for value in values {
            let before = tokens.len();
            tokens.extend(shapes(value.as_bytes()).map(<[u8]>::to_ascii_lowercase));
            if tokens.len() == before {
                own.push(value.as_bytes().to_ascii_lowercase());
            }
        }
        tokens.sort_unstable();
        tokens.dedup();
        let shortest = own.iter().map(Vec::len).fold(SHAPE_LEN, usize::min);
        let automata = if own.is_empty() {
            SHAPE_ONLY.with(Clone::clone)?
        } else {
            Automata::of(&own, cost)?
        };
        Some(Needles {
            automata,
            tokens,
            shortest,
        })
    }

    /// Searches every form of one text; `shape`: whether the shape counts in it.
    fn search(&self, text: &str, path: bool, shape: bool, cost: &mut Cost) -> Option<Finding> {
        if text.len() < self.shortest {
            return None;
        }
        cost.texts = cost.texts.saturating_add(1);
        let (ac, fold) = match (&self.automata.path, path) {
            (Some(folded), true) => (folded, true),
            _ => (&self.automata.header, false),
        };
        let lower = lowercase(text.as_bytes(), cost);
        let mut found = None;
        any_form(&lower, fold, cost, |form, cost| {
            cost.forms = cost.forms.saturating_add(1);
            cost.searched = cost.searched.saturating_add(form.len());
            found = hit(ac, form, shape, &self.tokens);
            found.is_some()
        });
        found
    }
}

/// The first finding in one form: a needle, one of the values' generated `tokens` (wherever
/// its prefix is), or the shape when `shape` (the prefix at a boundary followed by
/// [`TOKEN_BODY_LEN`] URL-safe bytes). Every match is reported (overlapping), so the prefix
/// hides no needle; the prefix cannot overlap itself, so the bytes after its matches are read
/// at most `TOKEN_BODY_LEN / TOKEN_PREFIX.len()` times each, and looked up in at most
/// `log2(tokens)` comparisons.
fn hit(ac: &AhoCorasick, hay: &[u8], shape: bool, tokens: &[Vec<u8>]) -> Option<Finding> {
    let Ok(matches) = ac.try_find_overlapping_iter(Input::new(hay)) else {
        return Some(Finding::Unsearchable);
    };
    for m in matches {
        if m.pattern().as_usize() != SHAPE {
            return Some(Finding::Credential);
        }
        let Some(whole) = hay.get(m.start()..m.start().saturating_add(SHAPE_LEN)) else {
            continue;
        };
        if !whole
            .get(TOKEN_PREFIX.len()..)
            .is_some_and(|body| body.iter().all(|c| url_safe(*c)))
        {
            continue;
        }
        if tokens.binary_search_by(|t| t.as_slice().cmp(whole)).is_ok() {
            return Some(Finding::Credential);
        }
        if shape && starts_shape(hay, m.start()) {
            return Some(Finding::TokenShape);
        }
    }
    None
}

/// The value of one hex digit.
fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// One percent-decoding layer of `bytes` (as `percent_encoding::percent_decode`: `%` and two
/// hex digits give their byte, anything else stays), lowercased, `+` read as a space when
/// `fold`; `None` when there is nothing to decode. Runs between escapes are copied whole.
fn decode(bytes: &[u8], fold: bool, cost: &mut Cost) -> Option<Vec<u8>> {
    let first = memchr::memchr(b'%', bytes)?;
    let mut next = Vec::with_capacity(bytes.len());
    let (mut run, mut rest) = bytes.split_at_checked(first)?;
    let mut changed = false;
    loop {
        next.extend_from_slice(run);
        let Some((_, after)) = rest.split_first() else {
            break;
        };
        let escape = match after {
            [h, l, tail @ ..] => hex(*h).zip(hex(*l)).map(|(h, l)| (h << 4 | l, tail)),
            _ => None,
        };
        match escape {
            Some((byte, tail)) => {
                next.push(byte);
                rest = tail;
                changed = true;
            }
            None => {
                next.push(b'%');
                rest = after;
            }
        }
        let at = memchr::memchr(b'%', rest).unwrap_or(rest.len());
        (run, rest) = rest.split_at_checked(at)?;
    }
    if !changed {
        return None;
    }
    // Escapes decode to any case: every form is searched lowercase.
    next.make_ascii_lowercase();
    if fold {
        plus_to_space(&mut next);
    }
    cost.decoded = cost.decoded.saturating_add(next.len());
    Some(next)
}

/// `bytes` read as text the way a server that replaces what is not UTF-8 reads them (as the
/// filter itself does when it decodes `?key=`); `None` when they are UTF-8 already.
fn as_text(bytes: &[u8], cost: &mut Cost) -> Option<Vec<u8>> {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(_) => None,
        Cow::Owned(text) => {
            cost.decoded = cost.decoded.saturating_add(text.len());
            Some(text.into_bytes())
        }
    }
}

/// Calls `look` on each form of `raw` until it returns true (then true). The forms, a fixed
/// set, never a tree: `raw` (with `+` as a space when `fold`), then per layer `k` (up to
/// [`DECODE_LAYERS`], while a layer decodes anything):
/// - `bytes_k`, `bytes_{k-1}` percent-decoded (a server that decodes bytes layer on layer),
///   read as text (invalid UTF-8 replaced, as a server that then reads text does). A needle
///   (valid UTF-8) or the shape (ASCII) in the bytes is in that reading too: a replacement
///   never takes a byte that starts a character;
/// - `text_k`, `text_{k-1}` percent-decoded and read as text (a server that reads text at
///   every layer), when it differs from the first (only bytes that were not UTF-8 at an
///   earlier layer and are completed by a later one make it differ).
///
/// Reading as text only replaces bytes ≥ 0x80, never a `%` or a hex digit, so both chains
/// decode the same escapes and stop together. No form is longer than `raw`: a byte replaced
/// by U+FFFD (3 bytes) was decoded from an escape (3 bytes or more).
pub fn any_form(
    raw: &[u8],
    fold: bool,
    cost: &mut Cost,
    mut look: impl FnMut(&[u8], &mut Cost) -> bool,
) -> bool {
    let folded;
    let raw = if fold && raw.contains(&b'+') {
        let mut copy = raw.to_vec();
        plus_to_space(&mut copy);
        cost.decoded = cost.decoded.saturating_add(copy.len());
        folded = copy;
        folded.as_slice()
    } else {
        raw
    };
    if look(raw, cost) {
        return true;
    }
    let mut bytes: Option<Vec<u8>> = None;
    // The text-only chain, kept once it differs from the bytes chain.
    let mut text: Option<Vec<u8>> = None;
    for _ in 0..DECODE_LAYERS {
        let Some(next) = decode(bytes.as_deref().unwrap_or(raw), fold, cost) else {
            return false;
        };
        let read = as_text(&next, cost);
        let reading = read.as_deref().unwrap_or(&next);
        if look(reading, cost) {
            return true;
        }
        text = match text {
            // The chains agreed up to here: this layer's text is the reading of the bytes
            // (`None`: the bytes themselves, they are UTF-8).
            None => read,
            Some(previous) => {
                let next_text = match decode(&previous, fold, cost) {
                    Some(decoded) => as_text(&decoded, cost).unwrap_or(decoded),
                    None => previous,
                };
                if next_text != reading && look(&next_text, cost) {
                    return true;
                }
                Some(next_text)
            }
        };
        bytes = Some(next);
    }
    false
}

/// True when `needle` occurs in `hay` in any of its forms (raw or percent-decoded up to three
/// layers, read as bytes or as text), ignoring ASCII case; in a path (`path`) a `+` also
/// reads as a space (in both).
pub fn occurs(hay: &[u8], needle: &[u8], path: bool) -> bool {
    let mut needle = needle.to_ascii_lowercase();
    if path {
        plus_to_space(&mut needle);
    }
    let Some(ac) = build([needle]) else {
        return true;
    };
    any_form(
        &hay.to_ascii_lowercase(),
        path,
        &mut Cost::default(),
        |form, _| match ac.try_find_overlapping_iter(Input::new(form)) {
            Ok(mut matches) => matches.next().is_some(),
            Err(_) => true,
        },
    )
}

/// The guard over the outbound request (`head` with `plan` applied), with the work counted.
pub fn inspect(head: &RequestHead, plan: &RewritePlan, sought: Sought<'_>) -> Inspection {
    let mut cost = Cost::default();
    let finding = find(head, plan, sought, &mut cost);
    Inspection { finding, cost }
}

fn find(
    head: &RequestHead,
    plan: &RewritePlan,
    sought: Sought<'_>,
    cost: &mut Cost,
) -> Option<Finding> {
    // The head and what the plan sets: at least what goes upstream, and cheaper to count.
    cost.outbound = head
        .iter()
        .chain(plan.set.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map(|(n, v)| n.len().saturating_add(v.len()))
        .fold(0, usize::saturating_add);
    if cost.outbound > MAX_OUTBOUND_BYTES {
        return Some(Finding::Oversized);
    }
    let values = match sought {
        Sought::Slots(token) => {
            let Ok(mut values) = guarded_values(head) else {
                return Some(Finding::Oversized);
            };
            if let Some(token) = token.filter(|t| t.len() >= MIN_GUARDED_LEN) {
                if token.len() > MAX_GUARDED_LEN {
                    return Some(Finding::Oversized);
                }
                if !values.iter().any(|v| v == token) {
                    values.push(Cow::Borrowed(token));
                }
            }
            values
        }
        Sought::Shape => Vec::new(),
    };
    let values: Vec<&str> = values.iter().map(|v| v.as_ref()).collect();
    let Some(needles) = Needles::new(&values, cost) else {
        return Some(Finding::Unsearchable);
    };
    let touched = |name: &str| {
        plan.remove.iter().any(|r| r == name) || plan.set.iter().any(|(n, _)| n == name)
    };
    let shortest = needles.shortest;
    for (name, value) in head.iter() {
        // Most headers are shorter than any match: they stop here, before the plan is read.
        if (name.len() < shortest && value.len() < shortest) || touched(name) {
            continue;
        }
        let found = needles
            .search(name, false, true, cost)
            .or_else(|| needles.search(value, name == ":path", true, cost));
        if found.is_some() {
            return found;
        }
    }
    for (name, value) in &plan.set {
        let client = CLIENT_SET.contains(&name.as_str());
        let found = needles
            .search(name, false, client, cost)
            .or_else(|| needles.search(value, name == ":path", client, cost));
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_search() {
        assert!(occurs(b"xxPTK_abcyy", b"ptk_ABC", false));
        assert!(!occurs(b"ptk_ab", b"ptk_abc", false));
        assert!(occurs(b"anything", b"", false));
        assert!(!occurs(b"", b"a", false));
    }

    #[test]
    fn decoded_layers_are_searched() {
        let needle = b"ptk_secret_value_1";
        let cases: [(&str, bool); 9] = [
            ("/p/ptk_secret_value_1", true),
            ("/p/ptk%5Fsecret%5Fvalue%5F1", true),
            ("/p/%70%74%6b_secret_value_1", true),
            ("/p/ptk%255Fsecret%255Fvalue%255F1", true),
            ("/p/ptk%25%35%46secret_value_1", true),
            ("/p/PTK_SECRET_VALUE_1", true),
            ("x ptk%5fsecret_value_1", true),
            ("/p/ptk_secret_value_2", false),
            ("/p/%%%ptk_secret_%value_1", false),
        ];
        for (value, want) in cases {
            assert_eq!(occurs(value.as_bytes(), needle, false), want, "{value}");
        }
        assert!(occurs(b"/p?q=my+custom+token", b"my custom token", true));
        assert!(occurs(
            b"/p?q=my%2Bcustom+token%20x",
            b"my custom token",
            true
        ));
        assert!(!occurs(b"x: my+custom+token", b"my custom token", false));
        // Bytes that are not UTF-8 once decoded also read as a server that replaces them would.
        let lossy = "\u{fffd}\u{fffd}custom-token".as_bytes();
        assert!(occurs(b"/p?x=%C3%28custom-token", b"(custom-token", true));
        assert!(occurs(b"/p?x=%FF%FEcustom-token", lossy, true));
        assert!(occurs(b"/p?x=%25FF%25FEcustom-token", lossy, true));
    }

    /// Both readings of a multi-layer encoding: a byte that is not UTF-8 at one layer and
    /// completed by the next (`C3` then `%A9`) is `é` to a server that decodes bytes twice, and
    /// two U+FFFD to one that reads text at every layer. Each needle is found in its own form.
    #[test]
    fn bytes_and_text_readings_are_both_searched() {
        let raw = b"/p/%C3%25A9xyz-custom-token";
        assert!(occurs(raw, "éxyz-custom-token".as_bytes(), false));
        assert!(occurs(
            raw,
            "\u{fffd}\u{fffd}xyz-custom-token".as_bytes(),
            false
        ));
        // The same one layer deeper.
        let raw = b"/p/%25C3%2525A9xyz-custom-token";
        assert!(occurs(raw, "éxyz-custom-token".as_bytes(), false));
        assert!(occurs(
            raw,
            "\u{fffd}\u{fffd}xyz-custom-token".as_bytes(),
            false
        ));
        // Escapes decode to upper case: found all the same.
        assert!(occurs(b"/%41%42c-custom-token", b"abc-custom-token", false));
    }

    #[test]
    fn forms_are_a_fixed_set_no_longer_than_the_text() {
        let texts: [&[u8]; 6] = [
            b"plain",
            b"%FF%25FF%2525FF%252561",
            b"%C3%25A9%2525C3%252525A9",
            b"%25252525252541",
            b"a+b%2Bc%252B",
            b"%E2%82%AC%E2%82%25AC%F0%9F",
        ];
        for text in texts {
            for fold in [false, true] {
                let mut forms = 0;
                any_form(text, fold, &mut Cost::default(), |form, _| {
                    assert!(form.len() <= text.len(), "{text:?}: {form:?}");
                    forms += 1;
                    false
                });
                assert!(forms <= MAX_FORMS, "{text:?}: {forms} forms");
            }
        }
    }

    #[test]
    fn decoding_is_percent_decoding() {
        let texts = [
            "",
            "%",
            "%%",
            "%4",
            "%4g%41",
            "a%2",
            "%41%4a%4A%zz%%41",
            "%C3%A9%FF",
            "x%25%32%35y",
        ];
        for text in texts {
            let want: Vec<u8> = percent_encoding::percent_decode(text.as_bytes()).collect();
            let got = decode(text.as_bytes(), false, &mut Cost::default());
            let want = (want != text.as_bytes()).then(|| want.to_ascii_lowercase());
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn the_token_shape() {
        let body = "AbCdEfGhIjKlMnOpQrStUvWxYz01-_89";
        assert_eq!(body.len(), TOKEN_BODY_LEN);
        for yes in [
            format!("ptk_{body}"),
            format!("PTK_{body}"),
            format!("x=ptk_{body}!"),
            format!("/v1/ptk_{body}more"),
            format!("a.ptk_{body}"),
            format!("AbC-ptk_{body}"),
        ] {
            assert!(shapes(yes.as_bytes()).next().is_some(), "{yes}");
        }
        for no in [
            format!("ptk_{}", &body[1..]),
            format!("ptk-{body}"),
            format!("ptk_{}!{}", &body[..10], &body[11..]),
            format!("ptk {body}"),
            // Glued to letters or digits: a random id, not a token.
            format!("xptk_{body}more"),
            format!("9ptk_{body}"),
        ] {
            assert!(shapes(no.as_bytes()).next().is_none(), "{no}");
        }
    }
}
