//! Fuzzing on stable Rust, as property tests: every parser of untrusted bytes (the
//! announce/scrape query, bencode, the `bencode` tool's JSON, the peer cache and its
//! JSON dump, the spill file, the journal, push API bodies) is fed random bytes and mutations of valid inputs, and
//! must never panic nor allocate more than its input justifies. A counting global
//! allocator measures, per thread and per call, the largest single request and the
//! peak of live bytes. Cheap round trips are checked on whatever decodes.
//!
//! `cargo test --test fuzz` runs 300 to 1,000 cases per target (a few seconds in a
//! debug build). `PROPTEST_CASES=N` sets the cases per target as proptest does;
//! `FUZZ_SECONDS=N` runs each target for N seconds with fresh seeds, e.g.
//! `FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture --test-threads 1`,
//! and prints per target the cases run and the worst ratios seen. Failing seeds are
//! kept in `proptest-regressions/fuzz/<target>.txt` and replayed first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use chihaya::accounting::spill::{self, Flag, SpillLine, SpillRow};
use chihaya::bencode::{self, Integer, Value};
use chihaya::cache::dump;
use chihaya::cache::format::{
    self, CacheFile, CachedEndpoint, CachedPeer, CachedTorrent, CachedUser,
};
use chihaya::cli::bencode as tool;
use chihaya::http::query::{self, announce_request, decode_path_segment, Query};
use chihaya::journal;
use chihaya::tracker::ip;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{
    Config, FileFailurePersistence, TestCaseError, TestCaseResult, TestRunner,
};

// ---------------------------------------------------------------------------------
// The counting allocator.

/// `System`, counting what the current thread asks for while a [`measure`] is open.
///
/// Requests of [`HUGE`] bytes or more are mapped with `MAP_NORESERVE` instead, so a
/// parser that reserves gigabytes because a length field said so reaches the bound
/// check (a test failure proptest shrinks and keeps) instead of aborting the binary
/// when malloc gives up: untouched pages cost nothing. Above [`REFUSED`], where even
/// the control bytes a hash table writes at once would be gigabytes, the request is
/// refused, which aborts the binary; first the input goes to [`REFUSED_INPUT`] and the
/// size to stderr, so the case can be replayed.
struct Counting;

/// Bigger than anything an honest case here allocates, far below what malloc refuses.
const HUGE: usize = 1 << 28;
const REFUSED: usize = 1 << 32;
/// Where the input of a refused request is written (NUL-terminated for open(2)).
const REFUSED_INPUT: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/fuzz-refused-input.bin\0");

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// The input of the call being measured, for a refused request.
    static INPUT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// Notes an allocation of `size` bytes (a realloc growing by `delta`); false if the
/// request is to be refused.
fn note(size: usize, delta: isize) -> bool {
    // try_with: the allocator also runs while thread-locals are torn down.
    let on = ON.try_with(Cell::get).unwrap_or(false);
    if !on {
        return true;
    }
    if size > REFUSED {
        refuse(size);
        return false;
    }
    LARGEST.set(LARGEST.get().max(size));
    let now = LIVE.get() + delta;
    LIVE.set(now);
    PEAK.set(PEAK.get().max(now));
    true
}

fn note_free(size: usize) {
    if ON.try_with(Cell::get).unwrap_or(false) {
        LIVE.set(LIVE.get() - size as isize);
    }
}

/// Saves the input and says why, without allocating: the binary aborts next.
fn refuse(size: usize) {
    fn say(text: &[u8]) {
        // SAFETY: writes a valid buffer to stderr.
        unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = size;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    say(b"\nfuzz: refused one allocation of ");
    say(&digits[at..]);
    say(b" bytes; the input is in ");
    say(&REFUSED_INPUT.as_bytes()[..REFUSED_INPUT.len() - 1]);
    say(b"\n");
    let (input, len) = INPUT.get();
    // SAFETY: the path is NUL-terminated; `input` is the slice `measure` was given,
    // alive for the whole call.
    unsafe {
        let fd = libc::open(
            REFUSED_INPUT.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        );
        if fd >= 0 {
            libc::write(fd, input.cast(), len);
            libc::close(fd);
        }
    }
}

/// Page-aligned, zeroed, uncommitted memory for a huge request; null if even that fails.
unsafe fn map_huge(size: usize) -> *mut u8 {
    let p = libc::mmap(
        std::ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

fn is_huge(layout: Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= 4096
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size(), layout.size() as isize) {
            return std::ptr::null_mut();
        }
        if is_huge(layout) {
            map_huge(layout.size())
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size(), layout.size() as isize) {
            return std::ptr::null_mut();
        }
        if is_huge(layout) {
            map_huge(layout.size()) // anonymous mappings are zeroed
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout) {
            libc::munmap(ptr.cast(), layout.size());
        } else {
            System.dealloc(ptr, layout);
        }
        note_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if is_huge(layout) || is_huge(new_layout) {
            // Either side is a mapping: move by hand (counted as alloc + free).
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            return new;
        }
        if !note(new_size, new_size as isize - layout.size() as isize) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one call allocated.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// The largest single allocation or reallocation request, in bytes.
    largest: usize,
    /// The most bytes live at once beyond what was live when the call began.
    peak: usize,
}

/// Runs `f`, a parser reading `input`, with this thread's allocations counted.
fn measure<T>(input: &[u8], f: impl FnOnce() -> T) -> (T, Usage) {
    /// Stops counting even when `f` panics (proptest catches the panic and shrinks).
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            ON.set(false);
            INPUT.set((std::ptr::null(), 0));
        }
    }
    LIVE.set(0);
    PEAK.set(0);
    LARGEST.set(0);
    INPUT.set((input.as_ptr(), input.len()));
    ON.set(true);
    let off = Off;
    let out = f();
    drop(off);
    let usage = Usage {
        largest: LARGEST.get(),
        peak: usize::try_from(PEAK.get()).unwrap_or(0),
    };
    (out, usage)
}

// ---------------------------------------------------------------------------------
// Bounds and the runner.

/// Fixed allowance for any call: error messages, a first small table, and the like.
const SLACK: usize = 64 << 10;

/// How much a target may allocate for an input of `len` bytes: no single request above
/// `max(len, 4096) * k1`, no more than `len * k2 + SLACK` live at once.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    k1: usize,
    k2: usize,
}

/// One fuzz target: its name (also its regression file) and default case count.
struct Target {
    name: &'static str,
    cases: u32,
    bounds: Bounds,
}

/// What a run saw, for the closing line.
#[derive(Default)]
struct Seen {
    cases: Cell<u64>,
    /// Worst `largest / max(len, 4096)`.
    largest: Cell<f64>,
    /// Worst `(peak - SLACK) / len`, or 0 while under the slack.
    peak: Cell<f64>,
}

impl Seen {
    /// Checks one measured call against the target's bounds.
    fn check(&self, target: &Target, what: &str, len: usize, usage: Usage) -> TestCaseResult {
        let Bounds { k1, k2 } = target.bounds;
        let base = len.max(4096);
        self.largest
            .set(self.largest.get().max(usage.largest as f64 / base as f64));
        let over = usage.peak.saturating_sub(SLACK) as f64 / len.max(1) as f64;
        self.peak.set(self.peak.get().max(over));
        if usage.largest > base * k1 {
            return Err(TestCaseError::fail(format!(
                "{what}: one allocation of {} bytes for {len} bytes of input (bound {})",
                usage.largest,
                base * k1
            )));
        }
        if usage.peak > len * k2 + SLACK {
            return Err(TestCaseError::fail(format!(
                "{what}: {} bytes live at once for {len} bytes of input (bound {})",
                usage.peak,
                len * k2 + SLACK
            )));
        }
        Ok(())
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

/// Runs `check` on inputs from `strategy`: `target.cases` of them (or `PROPTEST_CASES`),
/// or batches with fresh seeds for `FUZZ_SECONDS`; panics with the minimal failing
/// input, whose seed proptest stores in `proptest-regressions/fuzz/<name>.txt`.
fn fuzz<S>(target: &Target, strategy: S, check: impl Fn(&Seen, S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let path: &'static str =
        Box::leak(format!("proptest-regressions/fuzz/{}.txt", target.name).into_boxed_str());
    let seconds = env_number("FUZZ_SECONDS");
    let cases = match env_number("PROPTEST_CASES") {
        Some(_) => Config::default().cases, // proptest read it already
        // A timed run checks the clock between batches of this many cases.
        None if seconds.is_some() => 500,
        None => target.cases,
    };
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
        ..Config::default()
    };
    let seen = Seen::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds.unwrap_or(0));
    loop {
        // A new runner draws a fresh random seed (PROPTEST_RNG_SEED pins it).
        let mut runner = TestRunner::new(config.clone());
        let result = runner.run(&strategy, |value| {
            seen.cases.set(seen.cases.get() + 1);
            check(&seen, value)
        });
        if let Err(e) = result {
            panic!("fuzz {}: {e}", target.name);
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    eprintln!(
        "fuzz {}: {} cases in {:.1} s; worst: largest request {:.2} x max(len, 4096) (bound {}), peak {:.2} x len + 64 KiB (bound {})",
        target.name,
        seen.cases.get(),
        started.elapsed().as_secs_f64(),
        seen.largest.get(),
        target.bounds.k1,
        seen.peak.get(),
        target.bounds.k2,
    );
}

// ---------------------------------------------------------------------------------
// Inputs: random bytes, and mutations of valid seeds.

/// Bytes that print readably in a failure report.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\" ({} bytes)", self.0.escape_ascii(), self.0.len())
    }
}

/// One change to a seed. Positions are fractions of the current length.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    /// Overwrites `width` bytes with the little-endian `value` (counts, lengths, floats).
    SetInt(Index, usize, u64),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Copies up to `span` bytes from one place to another, `times` times.
    Duplicate {
        from: Index,
        span: usize,
        to: Index,
        times: usize,
    },
    /// Keeps the start of this seed and appends the tail of the other one.
    Splice(Index, Index),
}

/// Bytes that mean something to one of the parsers.
const INTERESTING: &[u8] = b"\x00\xff\x7f\x80\xc3e:%0123456789ildx-+&=\"\\{}[],$\n\r\t ";

const INTERESTING_INTS: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    i64::MIN as u64, // also -0.0
    u64::MAX,
    0x7ff8_0000_0000_0000, // NaN
    0x7ff0_0000_0000_0000, // infinity
];

/// Inputs grow no further than this, so a case stays fast.
const MAX_GROWN: usize = 1 << 16;

fn edit(tokens: &'static [&'static [u8]]) -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![3 => select(INTERESTING), 1 => any::<u8>()];
    let insert = prop_oneof![
        3 => select(tokens).prop_map(<[u8]>::to_vec),
        1 => vec(select(INTERESTING), 1..4),
        1 => vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        2 => (any::<Index>(), byte).prop_map(|(at, b)| Edit::Set(at, b)),
        2 => (any::<Index>(), select(&[1usize, 2, 4, 8][..]), select(INTERESTING_INTS))
            .prop_map(|(at, width, value)| Edit::SetInt(at, width, value)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        3 => (any::<Index>(), insert).prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        1 => (any::<Index>(), 1usize..32).prop_map(|(at, n)| Edit::Remove(at, n)),
        1 => (any::<Index>(), 1usize..64, any::<Index>(), 1usize..16)
            .prop_map(|(from, span, to, times)| Edit::Duplicate { from, span, to, times }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(at, from)| Edit::Splice(at, from)),
    ]
}

fn mutate(mut data: Vec<u8>, other: &[u8], edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = data.len();
        match edit {
            Edit::Flip(at, bit) if len > 0 => data[at.index(len)] ^= 1 << bit,
            Edit::Set(at, byte) if len > 0 => data[at.index(len)] = *byte,
            Edit::SetInt(at, width, value) if len >= *width => {
                let i = at.index(len - width + 1);
                data[i..i + width].copy_from_slice(&value.to_le_bytes()[..*width]);
            }
            Edit::Truncate(at) => data.truncate(at.index(len + 1)),
            Edit::Insert(at, bytes) if len < MAX_GROWN => {
                let i = at.index(len + 1);
                data.splice(i..i, bytes.iter().copied());
            }
            Edit::Remove(at, n) if len > 0 => {
                let i = at.index(len);
                data.drain(i..(i + n).min(len));
            }
            Edit::Duplicate {
                from,
                span,
                to,
                times,
            } if len > 0 && len < MAX_GROWN => {
                let start = from.index(len);
                let piece = data[start..(start + span).min(len)].to_vec();
                let i = to.index(len + 1);
                let copies: Vec<u8> = piece.repeat(*times);
                data.splice(i..i, copies);
            }
            Edit::Splice(at, from) => {
                data.truncate(at.index(len + 1));
                data.extend_from_slice(&other[from.index(other.len() + 1)..]);
            }
            _ => {}
        }
    }
    data
}

/// Random bytes (any, or over `alphabet`), seeds as they are, and mutated seeds.
fn inputs(
    seeds: BoxedStrategy<Vec<u8>>,
    alphabet: &'static [u8],
    tokens: &'static [&'static [u8]],
) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..200),
        1 => vec(select(alphabet), 0..200),
        2 => seeds.clone(),
        8 => (seeds.clone(), seeds, vec(edit(tokens), 1..8))
            .prop_map(|(seed, other, edits)| mutate(seed, &other, &edits)),
    ]
    .prop_map(Bytes)
}

// ---------------------------------------------------------------------------------
// 1. The announce/scrape query.

const ANNOUNCE_KEYS: &[&str] = &[
    "info_hash",
    "peer_id",
    "port",
    "uploaded",
    "downloaded",
    "left",
    "event",
    "ip",
    "ipv4",
    "numwant",
    "compact",
    "no_peer_id",
];

/// `bytes` as a client might send them: unreserved bytes raw or escaped, a space as
/// `+`, anything else `%XX` in either case.
fn escaped(bytes: &[u8], choices: &[u8]) -> String {
    let mut out = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        let choice = choices.get(i).copied().unwrap_or(0);
        match b {
            b' ' if choice & 1 == 0 => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~'
                if choice & 2 == 0 =>
            {
                out.push(char::from(b))
            }
            _ if choice & 4 == 0 => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<u16>().prop_map(|n| n.to_string()),
        "[0-9]{0,25}",
        select(&["started", "stopped", "completed", "paused", "", "0", "1"][..])
            .prop_map(str::to_owned),
        any::<Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<Ipv6Addr>().prop_map(|a| a.to_string()),
        (any::<[u8; 20]>(), vec(any::<u8>(), 20)).prop_map(|(b, c)| escaped(&b, &c)),
        (vec(any::<u8>(), 0..24), vec(any::<u8>(), 24)).prop_map(|(b, c)| escaped(&b, &c)),
        "[ -~]{0,12}",
    ]
}

/// A key as sent, sometimes in another case (which matters for `info_hash` only).
fn query_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(ANNOUNCE_KEYS).prop_map(str::to_owned),
        1 => (select(ANNOUNCE_KEYS), any::<u16>()).prop_map(|(key, bits)| {
            key.chars()
                .enumerate()
                .map(|(i, c)| if bits >> (i % 16) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect()
        }),
        1 => "[a-z_]{1,10}",
    ]
}

fn query_seed() -> BoxedStrategy<Vec<u8>> {
    let pair = (query_key(), query_value(), any::<bool>());
    let valid = (
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
        vec(any::<u8>(), 40),
        any::<u16>(),
        any::<[u64; 3]>(),
    )
        .prop_map(|(hash, peer, choices, port, [up, down, left])| {
            vec![
                format!("info_hash={}", escaped(&hash, &choices[..20])),
                format!("peer_id={}", escaped(&peer, &choices[20..])),
                format!("port={port}"),
                format!("uploaded={up}"),
                format!("downloaded={down}"),
                format!("left={left}"),
            ]
        });
    let extra = vec(
        pair.prop_map(|(key, value, eq)| {
            if eq || !value.is_empty() {
                format!("{key}={value}")
            } else {
                key
            }
        }),
        0..6,
    )
    .boxed();
    prop_oneof![
        (valid, extra.clone())
            .prop_map(|(mut valid, extra)| {
                valid.extend(extra);
                valid
            })
            .prop_shuffle(),
        extra,
    ]
    .prop_map(|pairs| pairs.join("&").into_bytes())
    .boxed()
}

const QUERY_TOKENS: &[&[u8]] = &[
    b"%",
    b"%2",
    b"%zz",
    b"%%",
    b"%41",
    b"%00",
    b"%ff",
    b"+",
    b"&",
    b"&&",
    b"=",
    b"==",
    b"info_hash=",
    b"INFO_HASH=",
    b"peer_id=",
    b"port=",
    b"left=",
    b"numwant=",
    b"event=",
    b"ip=",
    b"ipv4=",
    b"compact=0",
    b"no_peer_id=1",
    b"18446744073709551616",
    b"65536",
    b"::ffff:1.2.3.4",
    b"[::1]",
];

/// Whether every `%` is followed by two hex digits (which it then consumes).
fn escapes_ok(input: &[u8]) -> bool {
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            if !(input.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && input.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// The query parser keeps values borrowed, or decodes them into a `Vec` of the
/// encoded value's length (at most the input, itself capped at 8 KiB), and the
/// fixed-size `info_hash` and `peer_id` into arrays; `decode_path_segment` likewise.
const QUERY: Target = Target {
    name: "query",
    cases: 1000,
    bounds: Bounds { k1: 2, k2: 2 },
};

#[test]
fn query() {
    fuzz(
        &QUERY,
        inputs(
            query_seed(),
            b"%+&=_abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
            QUERY_TOKENS,
        ),
        |seen, Bytes(input)| {
            let len = input.len();
            let (parsed, usage) = measure(&input, || Query::parse(&input));
            seen.check(&QUERY, "Query::parse", len, usage)?;
            // SPEC Q1/Q2: refused exactly when too long or an escape is bad.
            prop_assert_eq!(
                parsed.is_ok(),
                len <= query::MAX_QUERY_LEN && escapes_ok(&input),
                "Query::parse: {:?}",
                parsed
            );
            if let Ok(parsed) = &parsed {
                for strict_port in [false, true] {
                    let (_, usage) = measure(&input, || {
                        announce_request(parsed, strict_port, || {
                            let source = ip::Source {
                                proxy_header: parsed.ip.as_deref(),
                                tcp_peer: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                            };
                            ip::resolve(parsed.ipv4.as_deref(), parsed.ip.as_deref(), &source)
                        })
                    });
                    seen.check(&QUERY, "announce_request", len, usage)?;
                }
            }

            let (segment, usage) = measure(&input, || decode_path_segment(&input));
            seen.check(&QUERY, "decode_path_segment", len, usage)?;
            prop_assert_eq!(segment.is_some(), escapes_ok(&input));
            // The three decoders agree where their rules do: `+` is a space only in
            // a query, and the fixed-size one matches the general one at 20 bytes.
            let (general, usage) = measure(&input, || query::decode(&input));
            seen.check(&QUERY, "decode", len, usage)?;
            let fixed = query::decode_20(&input);
            match &general {
                Ok(bytes) => {
                    let want = (bytes.len() == 20).then(|| bytes.to_vec());
                    prop_assert_eq!(fixed.map(|f| f.map(|a| a.to_vec())), Ok(want));
                }
                Err(e) => prop_assert_eq!(fixed.unwrap_err(), e.clone()),
            }
            if !input.contains(&b'+') {
                prop_assert_eq!(
                    segment.as_deref(),
                    general.as_deref().ok(),
                    "decode_path_segment and decode"
                );
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------
// 2 and 3. bencode and the `bencode` tool's JSON.

fn integer() -> impl Strategy<Value = Integer> {
    prop_oneof![
        any::<i64>().prop_map(Integer::from),
        "-?[1-9][0-9]{18,40}".prop_map(|s| Integer::from_decimal(&s).expect("canonical")),
    ]
}

/// Random values; dictionaries with distinct keys, sorted or not.
fn value() -> BoxedStrategy<Value> {
    let blob = prop_oneof![
        vec(any::<u8>(), 0..12),
        "\\$?\\$?(hex)?:?[a-z0-9]{0,6}".prop_map(String::into_bytes),
        "\\PC{0,4}".prop_map(String::into_bytes),
    ];
    let leaf = prop_oneof![
        integer().prop_map(Value::Int),
        blob.clone().prop_map(Value::Bytes)
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let dict = btree_map(blob.clone(), inner.clone(), 0..6)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>());
        prop_oneof![
            vec(inner, 0..6).prop_map(Value::List),
            dict.clone().prop_map(Value::Dict),
            dict.prop_shuffle().prop_map(Value::Dict),
        ]
    })
    .boxed()
}

fn bencoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    bencode::encode(value, &mut out);
    out
}

const BENCODE_SAMPLES: &[&[u8]] = &[
            b"d8:completei1e10:downloadedi0e10:incompletei0e8:intervali1932e12:min intervali900e5:peers0:e",
            b"d5:filesd20:\x59\xfc\x54\x31\xb1\x1c\x76\x1c\x94\xcd\x3e\xb9\x08\x25\xea\x6e\x6d\xc8\xa5\xf1d8:completei1e10:downloadedi0e10:incompletei0eee5:flagsd20:min_request_intervali900eee",
            b"d14:failure reason22:unregistered torrent e",
            b"d8:announce14:http://t/a/ann4:infod6:lengthi123456789012345678901234567890e4:name3:a.b6:pieces4:\x00\xff\x10\x80e4:listli-1e0:deee",
            b"d8:intervali1800e5:peersld2:ip7:1.2.3.47:peer id20:-TR2940-abcdefghijkl4:porti6881eee6:peers618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe1e",
        ];

/// Seeds in bencode: random values and the shapes a tracker and a torrent file have.
fn bencode_seed() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => value().prop_map(|v| bencoded(&v)),
        1 => select(BENCODE_SAMPLES).prop_map(<[u8]>::to_vec),
    ]
    .boxed()
}

fn long_run(byte: u8, n: usize) -> &'static [u8] {
    Box::leak(vec![byte; n].into_boxed_slice())
}

fn bencode_tokens() -> &'static [&'static [u8]] {
    Box::leak(
        vec![
            &b"i"[..],
            b"e",
            b"l",
            b"d",
            b"le",
            b"de",
            b"0:",
            b"1:a",
            b"4:spam",
            b"i0e",
            b"i-0e",
            b"i00e",
            b"i-1e",
            b"99999999999:",
            b"18446744073709551616:",
            b"4294967296:",
            b"i123456789012345678901234567890e",
            b"d1:ai1e1:ai2ee",
            b" \n",
            long_run(b'l', 520),
            long_run(b'd', 300),
        ]
        .into_boxed_slice(),
    )
}

/// Whether every dictionary's keys are in increasing byte order.
fn keys_sorted(value: &Value) -> bool {
    match value {
        Value::Int(_) | Value::Bytes(_) => true,
        Value::List(items) => items.iter().all(keys_sorted),
        Value::Dict(entries) => {
            entries.windows(2).all(|w| w[0].0 < w[1].0) && entries.iter().all(|e| keys_sorted(&e.1))
        }
    }
}

/// A decoded value is a tree of 32-byte `Value`s, and the shortest values are two
/// bytes (`le`, `0:`): a list of them is 16x its text, and 32x while its `Vec` doubles
/// (the largest single request). A one-element list costs its parent's slot plus a
/// `Vec` of the minimum capacity 4 (128 bytes), so `l` nested in `l` hundreds deep
/// approaches 128 bytes per 2 input bytes, 64x, the worst shape there is (see
/// `large_bencode`). `run(true, …)` adds the JSON text, about the input's size twice
/// over while its `String` grows. A length or count taken from the input would show as
/// thousands.
const BENCODE: Target = Target {
    name: "bencode",
    cases: 1000,
    bounds: Bounds { k1: 32, k2: 72 },
};

#[test]
fn bencode_decode() {
    fuzz(
        &BENCODE,
        inputs(bencode_seed(), b"ilde:-0123456789 \n\xff", bencode_tokens()),
        |seen, Bytes(input)| {
            let len = input.len();
            let (decoded, usage) = measure(&input, || bencode::decode(&input));
            seen.check(&BENCODE, "decode", len, usage)?;
            let (json, usage) = measure(&input, || tool::run(true, &input));
            seen.check(&BENCODE, "run(true, …)", len, usage)?;
            match (&decoded, &json) {
                (Ok(value), Ok(json)) => {
                    let canonical = bencoded(value);
                    // README: `bencode -d | bencode` gives the canonical form, which is
                    // the input itself when its keys are sorted.
                    let back = tool::run(false, json);
                    prop_assert_eq!(back.as_ref(), Ok(&canonical));
                    if keys_sorted(value) {
                        // Only what follows the value may be whitespace: `1: ` is a
                        // one-byte string.
                        let (head, tail) = input.split_at(canonical.len().min(len));
                        prop_assert_eq!(head, &canonical[..]);
                        prop_assert!(tail.iter().all(u8::is_ascii_whitespace));
                    }
                }
                (Err(a), Err(tool::Error::Bencode(b))) => prop_assert_eq!(a, b),
                _ => prop_assert!(false, "decode {:?} but run {:?}", decoded, json),
            }
            Ok(())
        },
    );
}

const JSON_SAMPLES: &[&str] = &[
    r#"{"interval": 1800, "peers": "", "ok": true}"#,
    r#"{"b":true,"a":[false,"x"],"$$c":{"$hex":"ff"}}"#,
    r#"{"$hex:ff61":1,"$$hex":"abcd","\u0024$x":[-0,123456789012345678901234567890]}"#,
    r#"[" \"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00", "é😀", {"":{}}]"#,
    " \t\r\n[ 1 , [ ] , { } ]\n",
];

/// Seeds in JSON: the tool's own output for random values, and hand-written texts with
/// escapes, surrogates and the `$` convention.
fn json_seed() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => value().prop_map(|v| bencode::to_json(&v).into_bytes()),
        1 => select(JSON_SAMPLES).prop_map(|s| s.as_bytes().to_vec()),
    ]
    .boxed()
}

fn json_tokens() -> &'static [&'static [u8]] {
    Box::leak(
        vec![
            &b"\\u"[..],
            b"\\ud83d",
            b"\\ude00",
            b"\\u0000",
            b"\\",
            b"\"",
            b"$",
            b"$$",
            b"$hex",
            b"{\"$hex\":\"",
            b"\"$hex:",
            b"null",
            b"true",
            b"false",
            b"1.5",
            b"1e3",
            b"-0",
            b"01",
            b"123456789012345678901234567890",
            b"{\"a\":1,\"a\":2}",
            b"\xc3\xa9",
            b"\xf0\x9f\x98\x80",
            b"\xed\xa0\x80",
            long_run(b'[', 520),
            Box::leak("{\"a\":".repeat(300).into_bytes().into_boxed_slice()),
        ]
        .into_boxed_slice(),
    )
}

/// A JSON value is the same tree as a bencode one from text as short (`[]` and `0,`
/// are two bytes each, `[…]` nests like `l…e`), so the same 32x for one request and
/// 64x for nested one-element arrays; keys are copied twice (the entry and the
/// duplicate check), an error names the path to the failing value (`[0]` per `[`, a
/// key per member, about 3x), and `run` adds the bencode text, about the input's size.
const JSON: Target = Target {
    name: "json",
    cases: 1000,
    bounds: Bounds { k1: 32, k2: 72 },
};

#[test]
fn bencode_json() {
    fuzz(
        &JSON,
        inputs(
            json_seed(),
            b"[]{}\",:\\u0123456789abcdefABCDEF$.eE+- \n",
            json_tokens(),
        ),
        |seen, Bytes(input)| {
            let len = input.len();
            let (encoded, usage) = measure(&input, || tool::run(false, &input));
            seen.check(&JSON, "run(false, …)", len, usage)?;
            let text = String::from_utf8_lossy(&input);
            let (value, usage) = measure(text.as_bytes(), || bencode::from_json(&text));
            seen.check(&JSON, "from_json", text.len(), usage)?;
            if let Ok(value) = &value {
                // to_json is exact: reading it back gives the same value.
                let again = bencode::to_json(value);
                let back = bencode::from_json(&again);
                prop_assert_eq!(back.as_ref(), Ok(value));
            }
            if matches!(text, Cow::Borrowed(_)) {
                match (&value, &encoded) {
                    (Ok(v), Ok(e)) => prop_assert_eq!(&bencoded(v), e),
                    (Err(a), Err(tool::Error::Json(b))) => prop_assert_eq!(a, b),
                    _ => prop_assert!(false, "from_json {:?} but run {:?}", value, encoded),
                }
            } else {
                prop_assert!(encoded.is_err(), "run(false) took text that is not UTF-8");
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------
// 4. The peer cache and its JSON dump.

fn multiplier() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        select(&[1.0, 0.0, 0.5, 2.0][..]),
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO,
    ]
}

fn endpoints() -> impl Strategy<
    Value = (
        Option<CachedEndpoint<Ipv4Addr>>,
        Option<CachedEndpoint<Ipv6Addr>>,
    ),
> {
    let v4 =
        (any::<Ipv4Addr>(), any::<u16>(), any::<i64>()).prop_map(|(ip, port, last_announce)| {
            CachedEndpoint {
                ip,
                port,
                last_announce,
            }
        });
    // A first byte of 0x20 keeps the address out of ::ffff:0:0/96.
    let v6 = (any::<[u8; 16]>(), any::<u16>(), any::<i64>()).prop_map(
        |(mut ip, port, last_announce)| {
            ip[0] = 0x20;
            CachedEndpoint {
                ip: Ipv6Addr::from(ip),
                port,
                last_announce,
            }
        },
    );
    prop_oneof![
        v4.clone().prop_map(|a| (Some(a), None)),
        v6.clone().prop_map(|b| (None, Some(b))),
        (v4, v6).prop_map(|(a, b)| (Some(a), Some(b))),
    ]
}

fn cache_torrent() -> impl Strategy<Value = CachedTorrent> {
    let peer = (
        any::<bool>(),
        endpoints(),
        any::<[u64; 3]>(),
        any::<i64>(),
        any::<u32>(),
    );
    (
        (any::<u32>(), any::<u32>()),
        prop_oneof![
            Just(Cow::Borrowed("anime")),
            Just(Cow::Borrowed("music")),
            "[a-z]{0,10}".prop_map(Cow::Owned),
        ],
        (any::<i32>(), any::<u32>(), any::<i64>()),
        (multiplier(), multiplier()),
        btree_map((any::<u32>(), any::<[u8; 20]>()), peer, 0..5),
    )
        .prop_map(
            |((id, group_id), torrent_type, (status, snatched, last_action), (up, down), peers)| {
                CachedTorrent {
                    info_hash: [0; 20],
                    id,
                    group_id,
                    torrent_type,
                    status,
                    snatched,
                    last_action,
                    up_multiplier: up,
                    down_multiplier: down,
                    peers: peers
                        .into_iter()
                        .map(
                            |(
                                (user_id, peer_id),
                                (
                                    seeding,
                                    (v4, v6),
                                    [uploaded, downloaded, left],
                                    start_time,
                                    client_id,
                                ),
                            )| CachedPeer {
                                peer_id,
                                user_id,
                                seeding,
                                v4,
                                v6,
                                uploaded,
                                downloaded,
                                left,
                                start_time,
                                client_id,
                            },
                        )
                        .collect(),
                }
            },
        )
}

/// A cache with users, torrents and peers of both families, dual-stack ones included.
fn cache_file() -> impl Strategy<Value = CacheFile> {
    let user = (
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        multiplier(),
        multiplier(),
    );
    (
        any::<i64>(),
        btree_map("[0-9a-zA-Z]{1,32}", user, 0..4),
        btree_map(any::<[u8; 20]>(), cache_torrent(), 0..4),
    )
        .prop_map(|(written_at, users, torrents)| CacheFile {
            written_at,
            users: users
                .into_iter()
                .map(
                    |(passkey, (id, disable_download, tracker_hide, up, down))| CachedUser {
                        passkey,
                        id,
                        disable_download,
                        tracker_hide,
                        up_multiplier: up,
                        down_multiplier: down,
                    },
                )
                .collect(),
            torrents: torrents
                .into_iter()
                .map(|(info_hash, torrent)| CachedTorrent {
                    info_hash,
                    ..torrent
                })
                .collect(),
        })
}

/// `file` in format version 1, which this build still reads but no longer writes:
/// users and torrents as in version 2, a peer with one address (its IPv4 endpoint if
/// it has one, sometimes written IPv4-mapped, else its IPv6 one) and one last_announce.
fn encode_v1(file: &CacheFile, mapped: bool) -> Vec<u8> {
    let mut out = format::MAGIC.to_vec();
    out.extend_from_slice(&format::VERSION_1.to_le_bytes());
    out.extend_from_slice(&file.written_at.to_le_bytes());
    out.extend_from_slice(&(file.users.len() as u32).to_le_bytes());
    for user in &file.users {
        out.push(user.passkey.len() as u8);
        out.extend_from_slice(user.passkey.as_bytes());
        out.extend_from_slice(&user.id.to_le_bytes());
        out.push(u8::from(user.disable_download) | u8::from(user.tracker_hide) << 1);
        out.extend_from_slice(&user.up_multiplier.to_bits().to_le_bytes());
        out.extend_from_slice(&user.down_multiplier.to_bits().to_le_bytes());
    }
    out.extend_from_slice(&(file.torrents.len() as u32).to_le_bytes());
    for torrent in &file.torrents {
        out.extend_from_slice(&torrent.info_hash);
        out.extend_from_slice(&torrent.id.to_le_bytes());
        out.extend_from_slice(&torrent.group_id.to_le_bytes());
        out.push(torrent.torrent_type.len() as u8);
        out.extend_from_slice(torrent.torrent_type.as_bytes());
        out.extend_from_slice(&torrent.status.to_le_bytes());
        out.extend_from_slice(&torrent.snatched.to_le_bytes());
        out.extend_from_slice(&torrent.last_action.to_le_bytes());
        out.extend_from_slice(&torrent.up_multiplier.to_bits().to_le_bytes());
        out.extend_from_slice(&torrent.down_multiplier.to_bits().to_le_bytes());
        out.extend_from_slice(&(torrent.peers.len() as u32).to_le_bytes());
        for peer in &torrent.peers {
            out.extend_from_slice(&peer.peer_id);
            out.extend_from_slice(&peer.user_id.to_le_bytes());
            out.push(u8::from(peer.seeding));
            let (port, last_announce) = match (peer.v4, peer.v6) {
                (Some(v4), _) if mapped => {
                    out.push(6);
                    out.extend_from_slice(&v4.ip.to_ipv6_mapped().octets());
                    (v4.port, v4.last_announce)
                }
                (Some(v4), _) => {
                    out.push(4);
                    out.extend_from_slice(&v4.ip.octets());
                    (v4.port, v4.last_announce)
                }
                (None, Some(v6)) => {
                    out.push(6);
                    out.extend_from_slice(&v6.ip.octets());
                    (v6.port, v6.last_announce)
                }
                (None, None) => unreachable!("the generator gives every peer an endpoint"),
            };
            out.extend_from_slice(&port.to_le_bytes());
            for counter in [peer.uploaded, peer.downloaded, peer.left] {
                out.extend_from_slice(&counter.to_le_bytes());
            }
            out.extend_from_slice(&peer.start_time.to_le_bytes());
            out.extend_from_slice(&last_announce.to_le_bytes());
            out.extend_from_slice(&peer.client_id.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Recomputes the CRC trailer (IEEE, over everything before the last 4 bytes), so that
/// a mutation reaches the decoder instead of stopping at the CRC check.
fn reseal(bytes: &mut [u8]) {
    if let Some(body) = bytes.len().checked_sub(4) {
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
    }
}

fn cache_seed() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => cache_file().prop_map(|f| format::encode(&f).expect("the generator stays in the format")),
        2 => (cache_file(), any::<bool>()).prop_map(|(f, mapped)| encode_v1(&f, mapped)),
        // A plausible header over a random body.
        1 => (0u32..4, any::<i64>(), vec(any::<u8>(), 0..160)).prop_map(|(version, at, body)| {
            let mut out = format::MAGIC.to_vec();
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(&[0; 4]);
            out
        }),
    ]
    .boxed()
}

const CACHE_TOKENS: &[&[u8]] = &[
    b"CHYPEERS",
    b"\x01\0\0\0",
    b"\x02\0\0\0",
    b"\xff\xff\xff\xff",
    b"\0\0\0\x80",
    b"anime",
    b"music",
    b"\x04",
    b"\x06",
    b"\x03",
];

/// Decoded, a user is a 48-byte `CachedUser` for as little as 23 bytes of file, in a
/// `Vec` that doubles (4.2x, the largest request), plus a slot in the duplicate table
/// (25 bytes, up to 2.3 slots per user) and two copies of its passkey; a torrent is a
/// 112-byte `CachedTorrent` for 73 bytes, a peer a 144-byte `CachedPeer` for 76, with
/// their tables, and `restore` builds the swarms from them (about 3x for a file of
/// peers). Every capacity taken from a count is cut to what the remaining bytes could
/// hold, so no shape reaches 5x in one request or 8x live.
const CACHE: Target = Target {
    name: "cache",
    cases: 600,
    bounds: Bounds { k1: 5, k2: 8 },
};

/// `file` in the order `cc restore` gives: users by passkey, torrents by info_hash,
/// peers by user then peer_id.
fn sorted_file(mut file: CacheFile) -> CacheFile {
    file.users.sort_by(|a, b| a.passkey.cmp(&b.passkey));
    file.torrents.sort_by_key(|t| t.info_hash);
    for torrent in &mut file.torrents {
        torrent.peers.sort_by_key(|p| (p.user_id, p.peer_id));
    }
    file
}

#[test]
fn peer_cache() {
    let strategy = (
        inputs(
            cache_seed(),
            b"\x00\x01\x02\x04\x06\xffCHYPERS",
            CACHE_TOKENS,
        ),
        any::<bool>(),
    )
        .prop_map(|(Bytes(mut bytes), sealed)| {
            if sealed {
                reseal(&mut bytes);
            }
            Bytes(bytes)
        });
    fuzz(&CACHE, strategy, |seen, Bytes(input)| {
        let len = input.len();
        let (decoded, usage) = measure(&input, || format::decode(&input));
        seen.check(&CACHE, "decode", len, usage)?;
        let (mut users, mut torrents) = (0usize, 0usize);
        let (streamed, usage) = measure(&input, || {
            format::decode_with(&input, |_| users += 1, |_| torrents += 1)
        });
        seen.check(&CACHE, "decode_with", len, usage)?;
        let (restored, usage) = measure(&input, || chihaya::server::peer_cache::restore(&input));
        seen.check(&CACHE, "state::restore", len, usage)?;
        match &decoded {
            Ok(file) => {
                prop_assert_eq!(streamed, Ok(file.written_at));
                prop_assert_eq!((users, torrents), (file.users.len(), file.torrents.len()));
                prop_assert!(restored.is_ok());
                // Written again it is version 2: the same bytes if it was already.
                let again = format::encode(file).expect("a decoded file re-encodes");
                if format::version_of(&input) == Some(format::VERSION) {
                    prop_assert!(again == input, "re-encoding changed a version 2 file");
                }
                let back = format::decode(&again);
                prop_assert_eq!(back.as_ref(), Ok(file));
                // `cc dump` then `cc restore` gives it back, sorted.
                let restored = dump::from_json(&dump::to_json(file));
                prop_assert_eq!(restored, Ok(sorted_file(file.clone())));
            }
            Err(e) => {
                prop_assert_eq!(streamed, Err(e.clone()));
                prop_assert_eq!(restored.err(), Some(e.clone()));
            }
        }
        Ok(())
    });
}

fn dump_seed() -> BoxedStrategy<Vec<u8>> {
    cache_file()
        .prop_map(|f| dump::to_json(&f).into_bytes())
        .boxed()
}

const DUMP_TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"-1",
    b"1e400",
    b"4294967296",
    b"18446744073709551616",
    b"0.5",
    b"\"\"",
    b"{}",
    b"\"version\": 1",
    b"\"version\": 2",
    b"\"ipv4\": {\"ip\": \"1.2.3.4\", \"last_announce\": 0, \"port\": 1}",
    b"\"ipv6\": {\"ip\": \"::ffff:1.2.3.4\", \"last_announce\": 0, \"port\": 1}",
    b"\"ip\": \"2001:db8::1\"",
    b"\"1-0000000000000000000000000000000000000000\": ",
    b"\"ABABABABABABABABABABABABABABABABABABABAB\": ",
    b"\"torrent_type\": \"",
    b"\"extra\": 1,",
    b"\\u0000",
    b"\\ud800",
];

/// serde_json reads the dump into `BTreeMap`s of small structs, each smaller than its
/// text (a user is ~100 bytes of JSON for ~80 bytes of entry and key, a peer ~150 for
/// ~120, key names and indentation cost nothing), and the restored file is smaller
/// again (under 2x in `large_peer_cache`); key paths in errors copy keys of the input.
const DUMP: Target = Target {
    name: "dump",
    cases: 300,
    bounds: Bounds { k1: 4, k2: 6 },
};

#[test]
fn peer_cache_dump() {
    fuzz(
        &DUMP,
        inputs(dump_seed(), b"{}[]\":, \n0123456789abcdef-.", DUMP_TOKENS),
        |seen, Bytes(input)| {
            let text = String::from_utf8_lossy(&input);
            let len = text.len();
            let (restored, usage) = measure(text.as_bytes(), || dump::from_json(&text));
            seen.check(&DUMP, "dump::from_json", len, usage)?;
            if let Ok(file) = restored {
                // Whatever restores is something the binary format holds, and it is
                // stable: dumped and restored again it is the same.
                let bytes = format::encode(&file);
                prop_assert!(bytes.is_ok(), "restored but not encodable: {:?}", bytes);
                let again = dump::from_json(&dump::to_json(&file));
                prop_assert_eq!(again, Ok(file));
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------
// 5. The spill file.

/// Lines of README "Spill file" and of the unit tests in spill.rs.
const SPILL_LINES: &[&str] = &[
    r#"{"v":1,"kind":"users","id":2,"uploaded":1024,"downloaded":0,"rawup":2048,"rawdl":0}"#,
    r#"{"v":1,"kind":"transfer_history","uid":3000000000,"fid":3,"uploaded":10,"downloaded":0,"seeding":1,"starttime":1795440000,"last_announce":1795440060,"activetime":60,"seedtime":60,"active":1,"snatched":0,"remaining":0,"error":"SQL error 1264: Out of range value for column 'uid' at row 1"}"#,
    r#"{"v":1,"kind":"transfer_history","uid":1,"fid":2,"uploaded":3,"downloaded":4,"seeding":1,"starttime":5,"last_announce":6,"activetime":7,"seedtime":8,"active":0,"snatched":9,"remaining":10,"error":"SQL error 1264: out of range"}"#,
    r#"{"v":1,"kind":"transfer_ips6","uid":1,"fid":2,"client_id":3,"ip":"2a00:1450::1","port":6881,"uploaded":4,"downloaded":5,"starttime":6,"last_announce":7}"#,
    r#"{"v":1,"kind":"unprune","id":1}"#,
    r#"{"v":1,"kind":"groups","torrent_id":7}"#,
    r#"{"v":2,"kind":"unprune","id":1}"#,
];

fn spill_row() -> impl Strategy<Value = SpillRow> {
    prop_oneof![
        (any::<[u32; 4]>(), any::<i64>()).prop_map(
            |([id, snatched, seeders, leechers], last_action)| {
                SpillRow::Torrents {
                    id,
                    snatched,
                    seeders,
                    leechers,
                    last_action,
                }
            }
        ),
        (any::<u32>(), any::<[u64; 4]>()).prop_map(|(id, [uploaded, downloaded, rawup, rawdl])| {
            SpillRow::Users {
                id,
                uploaded,
                downloaded,
                rawup,
                rawdl,
            }
        }),
        (
            any::<[u32; 3]>(),
            any::<[u64; 3]>(),
            any::<[i64; 4]>(),
            any::<[bool; 2]>()
        )
            .prop_map(
                |(
                    [uid, fid, snatched],
                    [uploaded, downloaded, remaining],
                    [starttime, last_announce, activetime, seedtime],
                    [seeding, active],
                )| {
                    SpillRow::TransferHistory {
                        uid,
                        fid,
                        uploaded,
                        downloaded,
                        seeding: Flag(seeding),
                        starttime,
                        last_announce,
                        activetime,
                        seedtime,
                        active: Flag(active),
                        snatched,
                        remaining,
                    }
                }
            ),
        (
            any::<[u32; 4]>(),
            any::<u16>(),
            any::<[u64; 2]>(),
            any::<[i64; 2]>()
        )
            .prop_map(
                |(
                    [uid, fid, client_id, ip],
                    port,
                    [uploaded, downloaded],
                    [starttime, last_announce],
                )| {
                    SpillRow::TransferIps {
                        uid,
                        fid,
                        client_id,
                        ip,
                        port,
                        uploaded,
                        downloaded,
                        starttime,
                        last_announce,
                    }
                }
            ),
        (
            any::<[u32; 3]>(),
            any::<Ipv6Addr>(),
            any::<u16>(),
            any::<[u64; 2]>(),
            any::<[i64; 2]>()
        )
            .prop_map(
                |(
                    [uid, fid, client_id],
                    ip,
                    port,
                    [uploaded, downloaded],
                    [starttime, last_announce],
                )| {
                    SpillRow::TransferIps6 {
                        uid,
                        fid,
                        client_id,
                        ip,
                        port,
                        uploaded,
                        downloaded,
                        starttime,
                        last_announce,
                    }
                }
            ),
        (any::<[u32; 2]>(), any::<[i64; 2]>()).prop_map(
            |([uid, fid], [snatched_time, starttime])| {
                SpillRow::Snatches {
                    uid,
                    fid,
                    snatched_time,
                    starttime,
                }
            }
        ),
        any::<u32>().prop_map(|id| SpillRow::Unprune { id }),
        any::<u32>().prop_map(|torrent_id| SpillRow::Groups { torrent_id }),
    ]
}

fn spill_seed() -> BoxedStrategy<Vec<u8>> {
    let line = prop_oneof![
        select(SPILL_LINES).prop_map(str::to_owned),
        (spill_row(), proptest::option::of("[ -~]{0,20}")).prop_map(|(row, error)| {
            serde_json::to_string(&SpillLine::new(row, error)).expect("a row serializes")
        }),
        Just(String::new()),
    ];
    (vec(line, 1..6), any::<bool>())
        .prop_map(|(lines, terminated)| {
            let mut text = lines.join("\n");
            if terminated {
                text.push('\n');
            }
            text.into_bytes()
        })
        .boxed()
}

const SPILL_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\n\n",
    b"\"",
    b"{",
    b"}",
    b",",
    b":",
    b"\"v\":1,",
    b"\"v\":2,",
    b"\"kind\":\"users\",",
    b"\"kind\":\"transfer_ips6\",",
    b"\"error\":\"",
    b"null",
    b"-1",
    b"2",
    b"4294967296",
    b"18446744073709551616",
    b"\"ip\":\"::ffff:1.2.3.4\"",
    b"\\u0000",
];

/// A parsed line is a 104-byte `SpillLine` (plus its error text, copied from the
/// line) for a line of at least 33 bytes (`{"v":1,"kind":"unprune","id":1}`), in a
/// `Vec` that doubles: up to 6.3x in one request for a file of the shortest lines,
/// about 1x for real ones. Lines are walked, not collected, so blank lines cost nothing.
const SPILL: Target = Target {
    name: "spill",
    cases: 600,
    bounds: Bounds { k1: 8, k2: 8 },
};

#[test]
fn spill_file() {
    let path = Path::new("accounting-spill.jsonl");
    fuzz(
        &SPILL,
        inputs(
            spill_seed(),
            b"{}\":,\n 0123456789abcdefghijklmnopqrstuvwxyz_",
            SPILL_TOKENS,
        ),
        |seen, Bytes(input)| {
            let len = input.len();
            let (parsed, usage) = measure(&input, || spill::parse(path, &input));
            seen.check(&SPILL, "spill::parse", len, usage)?;
            if let Ok(replayed) = parsed {
                // What was read, written again, reads back the same.
                let mut text = Vec::new();
                for line in &replayed.lines {
                    serde_json::to_writer(&mut text, line).expect("a line serializes");
                    text.push(b'\n');
                }
                let again = spill::parse(path, &text).expect("written lines parse");
                prop_assert_eq!(again.lines, replayed.lines);
                prop_assert_eq!(again.torn_tail, None);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------
// 6. The journal's segments (a file the tracker wrote, but that a crash or a bad disk
// may have damaged).

/// One announce record with the given counters: a dual-stack peer, every optional
/// part present.
fn journal_announce(counters: [u64; 4], removed: bool) -> Vec<u8> {
    use chihaya::tracker::{
        AnnounceDeltas, ClientId, Endpoint, HistoryDelta, Peer, PeerChange, PeerId, PeerKey,
        SnatchDelta, TorrentDelta, TorrentId, TransferIp, TransferIpDelta, UserDelta, UserId,
    };
    let [up, down, left, time] = counters;
    let time = i64::try_from(time >> 1).unwrap_or(i64::MAX);
    let seen = std::num::NonZeroU32::MIN;
    let peer = Peer {
        v4: Some(Endpoint {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            port: 6881,
            seen,
        }),
        v6: Some(Endpoint {
            ip: Ipv6Addr::LOCALHOST,
            port: 6881,
            seen,
        }),
        uploaded: up,
        downloaded: down,
        left,
        start_time: 1,
        client_id: ClientId(2),
        completed_over: None,
    };
    let (user, torrent) = (UserId(3), TorrentId(4));
    let row = TransferIpDelta {
        user,
        torrent,
        client: ClientId(2),
        ip: (),
        port: 6881,
        uploaded: up,
        downloaded: down,
        start_time: time,
        last_announce: time,
    };
    let deltas = AnnounceDeltas {
        torrent: TorrentDelta {
            id: torrent,
            snatched: 1,
            seeders: 2,
            leechers: 3,
            last_action: time,
        },
        history: HistoryDelta {
            user,
            torrent,
            uploaded: up,
            downloaded: down,
            seeding: left == 0,
            start_time: time,
            last_announce: time,
            active_time: time,
            seed_time: -time,
            active: !removed,
            snatched: 1,
            remaining: left,
        },
        user: Some(UserDelta {
            id: user,
            uploaded: up,
            downloaded: down,
            rawup: up,
            rawdl: down,
        }),
        transfer_ip: if removed {
            TransferIp::V6(row.with_ip([7; 16]))
        } else {
            TransferIp::V4(row.with_ip(0x0a00_0001))
        },
        snatch: Some(SnatchDelta {
            user,
            torrent,
            snatched_time: time,
            start_time: time,
        }),
        unprune: Some(torrent),
    };
    let change = PeerChange {
        torrent,
        key: PeerKey {
            user,
            peer_id: PeerId([5; 20]),
        },
        peer: (!removed).then_some((&peer, true)),
        evicted: &[PeerId([6; 20])],
    };
    let mut out = Vec::new();
    journal::record::announce(&mut out, &change, &deltas);
    out
}

/// Record payloads: headers, cuts, rows and announces, in any order.
fn journal_seed() -> BoxedStrategy<Vec<u8>> {
    let one = prop_oneof![
        (any::<u64>(), any::<u64>(), any::<[u64; 8]>()).prop_map(|(segment, database, open)| {
            let mut out = Vec::new();
            journal::record::header(&mut out, segment, database, &open);
            out
        }),
        (0u8..8, any::<u64>()).prop_map(|(kind, epoch)| {
            let mut out = Vec::new();
            journal::record::cut(&mut out, kind, epoch);
            out
        }),
        vec(any::<u8>(), 0..40).prop_map(|line| {
            let mut out = Vec::new();
            journal::record::row(&mut out, &line);
            out
        }),
        (any::<[u64; 4]>(), any::<bool>())
            .prop_map(|(counters, removed)| journal_announce(counters, removed)),
    ];
    vec(one, 1..6).prop_map(|records| records.concat()).boxed()
}

const JOURNAL_TOKENS: &[&[u8]] = &[
    b"\x01",
    b"\x02",
    b"\x03",
    b"\x04",
    b"\x00",
    b"\xff",
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    b"\xff\xff\xff\x7f",
];

/// Read back, a segment's records cost their own bytes at most (rows are copied, an
/// announce is a fixed-size box, the frames a list of slices): never more than a few
/// times the file.
const JOURNAL: Target = Target {
    name: "journal",
    cases: 600,
    bounds: Bounds { k1: 8, k2: 8 },
};

#[test]
fn journal_segment() {
    fuzz(
        &JOURNAL,
        inputs(
            journal_seed(),
            b"\x00\x01\x02\x03\x04\x7f\x80\xff",
            JOURNAL_TOKENS,
        ),
        |seen, Bytes(payload)| {
            // As a file of raw bytes (a damaged one), and as the payload of one frame
            // whose checksum holds, so that the records themselves are decoded.
            let mut framed = Vec::new();
            journal::record::frame(&mut framed, &payload);
            for file in [&payload, &framed] {
                let len = file.len();
                let mut open = [0; journal::KINDS];
                let mut records = 0usize;
                let (end, usage) = measure(file, || {
                    journal::recover::read_segment(file, &mut open, |_| records += 1)
                });
                seen.check(&JOURNAL, "journal::recover::read_segment", len, usage)?;
                prop_assert!(end.good <= len as u64);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------
// 7. Push API bodies (only a token holder reaches the parser, but a site's bug can send
// anything).

const PUSH_SAMPLES: &[&str] = &[
    r#"{"op": "update_torrent", "id": 7, "info_hash": "0123456789abcdef0123456789ABCDEF01234567", "group_id": 3, "type": "anime", "up_multiplier": 0.5, "status": 1}"#,
    r#"[{"op": "delete_torrent", "info_hash": "0123456789abcdef0123456789ABCDEF01234567", "id": 1}, {"op": "remove_client", "id": 9}]"#,
    r#"{"op": "update_user", "id": 4, "passkey": "k", "enabled": false, "disable_download": true, "tracker_hide": true, "down_multiplier": 2}"#,
    r#"{"op": "change_passkey", "old_passkey": "a", "new_passkey": "b"}"#,
    r#"[{"op": "approve_client", "id": 0, "peer_id": "-TR4"}, {"op": "set_global_freeleech", "on": true}]"#,
    r#"[{"op": "mark_hit_and_run", "user_id": 1, "torrent_id": 2}, {"op": "clear_hit_and_run", "user_id": 1, "torrent_id": 2}, {"op": "disable_user", "passkey": "x"}]"#,
];

/// The push body is a JSON tree like the `bencode` tool's (the same bounds), turned
/// into operations no larger than their text.
const PUSH: Target = Target {
    name: "push",
    cases: 1000,
    bounds: Bounds { k1: 32, k2: 72 },
};

#[test]
fn push_body() {
    let seeds = select(PUSH_SAMPLES)
        .prop_map(|s| s.as_bytes().to_vec())
        .boxed();
    fuzz(
        &PUSH,
        inputs(
            seeds,
            b"[]{}\",:0123456789abcdefABCDEF.eE+- optrue",
            json_tokens(),
        ),
        |seen, Bytes(input)| {
            let (parsed, usage) = measure(&input, || chihaya::push::parse(&input));
            seen.check(&PUSH, "parse", input.len(), usage)?;
            match parsed {
                Ok(request) => {
                    prop_assert!(!request.ops.is_empty());
                    for op in &request.ops {
                        prop_assert!(chihaya::push::OPERATIONS.contains(&op.name()));
                    }
                }
                // Every refusal says what is wrong.
                Err(bad) => prop_assert!(!bad.problem.is_empty()),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------
// Large inputs, where the fixed slack no longer hides anything: the worst shapes per
// byte each parser has (and real-looking big files), each within its target's bounds.

/// Measures `f` on an input of `len` bytes against `target`, and says how it went.
fn large<T>(target: &Target, what: &str, input: &[u8], f: impl FnOnce() -> T) {
    let len = input.len();
    let (_, usage) = measure(input, f);
    eprintln!(
        "large {} {what}: {len} bytes, largest request {:.2} x len, peak {:.2} x len",
        target.name,
        usage.largest as f64 / len as f64,
        usage.peak as f64 / len as f64
    );
    if let Err(e) = Seen::default().check(target, what, len, usage) {
        panic!("{e}");
    }
}

/// `unit` repeated to about `size` bytes, between `open` and `close`.
fn repeated(open: &str, unit: &str, close: &str, size: usize) -> Vec<u8> {
    let mut out = open.as_bytes().to_vec();
    while out.len() + unit.len() + close.len() <= size {
        out.extend_from_slice(unit.as_bytes());
    }
    out.extend_from_slice(close.as_bytes());
    out
}

/// `n` distinct 3-byte keys, in increasing order.
fn keys(n: usize) -> impl Iterator<Item = [u8; 3]> {
    (0..n).map(|i| {
        [
            b'a' + (i / 676 % 26) as u8,
            b'a' + (i / 26 % 26) as u8,
            b'a' + (i % 26) as u8,
        ]
    })
}

const MIB: usize = 1 << 20;

#[test]
fn large_bencode() {
    let mut shapes = vec![
        ("list of empty lists", repeated("l", "le", "e", MIB)),
        ("list of zeros", repeated("l", "i0e", "e", MIB)),
        ("list of empty strings", repeated("l", "0:", "e", MIB)),
        ("list of nested lists", repeated("l", "llleee", "e", MIB)),
        (
            "lists nested 500 deep",
            repeated(
                "l",
                &format!("{}{}", "l".repeat(500), "e".repeat(500)),
                "e",
                MIB,
            ),
        ),
        (
            "dicts nested 500 deep",
            repeated(
                "l",
                &format!("{}le{}", "d0:".repeat(500), "e".repeat(500)),
                "e",
                MIB,
            ),
        ),
    ];
    let mut dict = b"d".to_vec();
    for key in keys(17_000) {
        dict.extend_from_slice(b"3:");
        dict.extend_from_slice(&key);
        dict.extend_from_slice(b"le");
    }
    dict.push(b'e');
    shapes.push(("dict of 3-byte keys", dict));
    let mut string = format!("{MIB}:").into_bytes();
    string.extend((0..MIB).map(|i| i as u8));
    shapes.push(("one binary string", string));
    for (what, input) in &shapes {
        large(&BENCODE, &format!("decode, {what}"), input, || {
            bencode::decode(input).expect("valid")
        });
        large(&BENCODE, &format!("run(true), {what}"), input, || {
            tool::run(true, input).expect("valid")
        });
    }
}

#[test]
fn large_json() {
    let mut object = "{".to_owned();
    for key in keys(17_000) {
        object.push_str(&format!("\"{}\":0,", std::str::from_utf8(&key).unwrap()));
    }
    object.push_str("\"\":0}");
    let deep_keys = format!("{}null", format!("{{\"{}\":", "k".repeat(2000)).repeat(511));
    let shapes = vec![
        ("array of empty arrays", repeated("[", "[],", "[]]", MIB)),
        (
            "arrays nested 500 deep",
            repeated(
                "[",
                &format!("{}{},", "[".repeat(500), "]".repeat(500)),
                "[]]",
                MIB,
            ),
        ),
        (
            "objects nested 500 deep",
            repeated(
                "[",
                &format!("{}0{},", "{\"\":".repeat(500), "}".repeat(500)),
                "0]",
                MIB,
            ),
        ),
        ("array of zeros", repeated("[", "0,", "0]", MIB)),
        (
            "array of empty strings",
            repeated("[", "\"\",", "\"\"]", MIB),
        ),
        (
            "array of hex strings",
            repeated("[", "{\"$hex\":\"\"},", "0]", MIB),
        ),
        ("one escaped string", repeated("\"", "\\u0041", "\"", MIB)),
        ("object of 3-byte keys", object.into_bytes()),
        ("error under 511 long keys", deep_keys.into_bytes()),
        (
            "error under 512 arrays",
            repeated(&"[".repeat(512), "0,", "x", MIB),
        ),
    ];
    for (what, input) in &shapes {
        large(&JSON, &format!("run(false), {what}"), input, || {
            tool::run(false, input)
        });
    }
}

/// A cache of `users` users and `torrents` torrents of `peers` IPv4-only peers each.
fn big_cache(users: usize, torrents: usize, peers: usize) -> CacheFile {
    let endpoint = CachedEndpoint {
        ip: Ipv4Addr::new(1, 2, 3, 4),
        port: 6881,
        last_announce: 0,
    };
    CacheFile {
        written_at: 0,
        users: (0..users)
            .map(|i| CachedUser {
                passkey: format!("{i:x}"),
                id: i as u32,
                disable_download: false,
                tracker_hide: false,
                up_multiplier: 1.0,
                down_multiplier: 1.0,
            })
            .collect(),
        torrents: (0..torrents)
            .map(|t| {
                let mut info_hash = [0; 20];
                info_hash[..8].copy_from_slice(&(t as u64).to_le_bytes());
                CachedTorrent {
                    info_hash,
                    id: t as u32,
                    group_id: 0,
                    torrent_type: Cow::Borrowed("music"),
                    status: 0,
                    snatched: 0,
                    last_action: 0,
                    up_multiplier: 1.0,
                    down_multiplier: 1.0,
                    peers: (0..peers)
                        .map(|p| CachedPeer {
                            peer_id: [0; 20],
                            user_id: p as u32,
                            seeding: p % 2 == 0,
                            v4: Some(endpoint),
                            v6: None,
                            uploaded: 0,
                            downloaded: 0,
                            left: 0,
                            start_time: 0,
                            client_id: 0,
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

#[test]
fn large_peer_cache() {
    let shapes = [
        ("peers in one torrent", big_cache(0, 1, 14_000)),
        ("peers over many torrents", big_cache(0, 2_000, 6)),
        ("torrents without peers", big_cache(0, 14_000, 0)),
        ("users", big_cache(45_000, 0, 0)),
        ("a real mix", big_cache(5_000, 2_000, 5)),
    ];
    for (what, file) in &shapes {
        for (version, bytes) in [
            (2, format::encode(file).unwrap()),
            (1, encode_v1(file, false)),
        ] {
            large(
                &CACHE,
                &format!("decode v{version}, {what}"),
                &bytes,
                || format::decode(&bytes).unwrap(),
            );
            large(
                &CACHE,
                &format!("restore v{version}, {what}"),
                &bytes,
                || chihaya::server::peer_cache::restore(&bytes).unwrap(),
            );
            let (mut users, mut torrents) = (0, 0);
            let mut claims = bytes.clone();
            // The first count claims 4 billion entries: reserved no further than the
            // file could hold, and refused as truncated.
            claims[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
            reseal(&mut claims);
            large(
                &CACHE,
                &format!("decode v{version}, {what}, user count 2^32-1"),
                &claims,
                || format::decode(&claims).unwrap_err(),
            );
            large(
                &CACHE,
                &format!("decode_with v{version}, {what}"),
                &bytes,
                || format::decode_with(&bytes, |_| users += 1, |_| torrents += 1).unwrap(),
            );
        }
        let text = dump::to_json(file);
        large(
            &DUMP,
            &format!("from_json, {what}"),
            text.as_bytes(),
            || dump::from_json(&text).unwrap(),
        );
    }
}

#[test]
fn large_spill() {
    let path = Path::new("spill.jsonl");
    let shapes = [
        (
            "shortest lines",
            repeated("", "{\"v\":1,\"kind\":\"unprune\",\"id\":1}\n", "", MIB),
        ),
        (
            "README lines",
            repeated(
                "",
                &format!("{}\n{}\n", SPILL_LINES[0], SPILL_LINES[1]),
                "",
                MIB,
            ),
        ),
        ("blank lines", vec![b'\n'; MIB]),
        (
            "blank lines, then a bad one",
            repeated("", "\n", "x\n", MIB),
        ),
        ("lines of spaces", repeated("", " \n", "", MIB)),
    ];
    for (what, input) in &shapes {
        large(&SPILL, what, input, || spill::parse(path, input));
    }
}

#[test]
fn large_query() {
    let hash = "info_hash=%12%34%56%78%9a%BC%de%F0%00%ff%20%2B+abcdefg&";
    let shapes = [
        (
            "repeated info_hash",
            repeated("", hash, "", query::MAX_QUERY_LEN),
        ),
        (
            "one long escaped value",
            repeated("ip=", "%41", "", query::MAX_QUERY_LEN),
        ),
        (
            "empty segments",
            repeated("", "&", "", query::MAX_QUERY_LEN),
        ),
        (
            "ignored keys",
            repeated("", "x%41=%42&", "", query::MAX_QUERY_LEN),
        ),
    ];
    for (what, input) in &shapes {
        large(&QUERY, &format!("Query::parse, {what}"), input, || {
            Query::parse(input).unwrap()
        });
    }
    let segment = repeated("", "%41", "", MIB);
    large(&QUERY, "decode_path_segment", &segment, || {
        decode_path_segment(&segment).unwrap()
    });
}
