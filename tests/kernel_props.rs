//! Property tests of the kernel (kernel/kernel.wat) against a simple model.
//!
//! The kernel is loaded directly with `wat` + `wasmtime`, not through the crate's API, so these
//! tests pin the behaviour of the kernel module itself: the invariants of
//! shared/spec/kernel.md §9 plus the stronger guarantees documented in kernel/README.md.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as PtConfig;
use wasmtime::{
    Config, Engine, ExternType, Instance, Memory, Module, Mutability, Store, TypedFunc,
};

/// First handle of a generation; memory-0 bytes below it are never handed out.
const DATA_START: u64 = 128;
/// Largest request that could ever fit a 4 GiB memory.
const MAX_ALLOC: u64 = (1 << 32) - DATA_START;
const WAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kernel/kernel.wat");

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let mut c = Config::new();
        c.wasm_multi_memory(true); // on by default in wasmtime 48; the kernel needs it
        Engine::new(&c).unwrap()
    })
}

fn module() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| Module::new(engine(), wat::parse_file(WAT).unwrap()).unwrap())
}

fn gran(n: u64) -> u64 {
    (n + 15) & !15
}

/// The host's side of the kernel's imports (config and vars, kernel.wat): records what the
/// kernel asks, and answers `lookup` with `value_len`.
#[derive(Default)]
struct Host {
    value_len: u64,
    asked: Vec<(&'static str, [u64; 4])>,
}

struct Kernel {
    store: Store<Host>,
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<i64, i64>,
    free: TypedFunc<i64, ()>,
    length: TypedFunc<i64, i64>,
    length_unsafe: TypedFunc<i64, i64>,
    load_u8: TypedFunc<i64, i32>,
    load_u64: TypedFunc<i64, i64>,
    store_u8: TypedFunc<(i64, i32), ()>,
    store_u64: TypedFunc<(i64, i64), ()>,
    input_load_u8: TypedFunc<i64, i32>,
    input_load_u64: TypedFunc<i64, i64>,
    input_set: TypedFunc<(i64, i64), ()>,
    input_length: TypedFunc<(), i64>,
    input_offset: TypedFunc<(), i64>,
    output_set: TypedFunc<(i64, i64), ()>,
    output_length: TypedFunc<(), i64>,
    output_offset: TypedFunc<(), i64>,
    error_set: TypedFunc<i64, ()>,
    error_get: TypedFunc<(), i64>,
    memory_bytes: TypedFunc<(), i64>,
    reset: TypedFunc<(), ()>,
}

// Every call unwraps: a trap anywhere is a test failure ("no export ever traps").
impl Kernel {
    fn new(module: &Module) -> Kernel {
        let mut store = Store::new(engine(), Host::default());
        let lookup = wasmtime::Func::wrap(
            &mut store,
            |mut c: wasmtime::Caller<'_, Host>, what: i32, k: i64, len: i64, at: i64| {
                let host = c.data_mut();
                host.asked
                    .push(("lookup", [what as u64, k as u64, len as u64, at as u64]));
                host.value_len as i64
            },
        );
        let copy = wasmtime::Func::wrap(
            &mut store,
            |mut c: wasmtime::Caller<'_, Host>, what: i32, h: i64| {
                c.data_mut()
                    .asked
                    .push(("copy", [what as u64, h as u64, 0, 0]));
            },
        );
        let var_set = wasmtime::Func::wrap(
            &mut store,
            |mut c: wasmtime::Caller<'_, Host>, k: i64, kl: i64, v: i64, vl: i64| {
                c.data_mut()
                    .asked
                    .push(("var_set", [k as u64, kl as u64, v as u64, vl as u64]));
            },
        );
        let imports = [lookup.into(), copy.into(), var_set.into()];
        let instance = Instance::new(&mut store, module, &imports).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        macro_rules! f {
            ($name:literal) => {
                instance.get_typed_func(&mut store, $name).unwrap()
            };
        }
        Kernel {
            alloc: f!("alloc"),
            free: f!("free"),
            length: f!("length"),
            length_unsafe: f!("length_unsafe"),
            load_u8: f!("load_u8"),
            load_u64: f!("load_u64"),
            store_u8: f!("store_u8"),
            store_u64: f!("store_u64"),
            input_load_u8: f!("input_load_u8"),
            input_load_u64: f!("input_load_u64"),
            input_set: f!("input_set"),
            input_length: f!("input_length"),
            input_offset: f!("input_offset"),
            output_set: f!("output_set"),
            output_length: f!("output_length"),
            output_offset: f!("output_offset"),
            error_set: f!("error_set"),
            error_get: f!("error_get"),
            memory_bytes: f!("memory_bytes"),
            reset: f!("reset"),
            store,
            instance,
            memory,
        }
    }
    /// An export the struct does not hold, such as the runtime's own `extism-run:*` ones.
    fn func<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        name: &str,
    ) -> TypedFunc<P, R> {
        self.instance.get_typed_func(&mut self.store, name).unwrap()
    }
    fn alloc(&mut self, n: u64) -> u64 {
        self.alloc.call(&mut self.store, n as i64).unwrap() as u64
    }
    fn free(&mut self, h: u64) {
        self.free.call(&mut self.store, h as i64).unwrap()
    }
    fn length(&mut self, h: u64) -> u64 {
        self.length.call(&mut self.store, h as i64).unwrap() as u64
    }
    fn length_unsafe(&mut self, h: u64) -> u64 {
        self.length_unsafe.call(&mut self.store, h as i64).unwrap() as u64
    }
    fn load_u8(&mut self, p: u64) -> u8 {
        let v = self.load_u8.call(&mut self.store, p as i64).unwrap();
        assert!((0..256).contains(&v), "load_u8 must zero-extend, got {v}");
        v as u8
    }
    fn load_u64(&mut self, p: u64) -> u64 {
        self.load_u64.call(&mut self.store, p as i64).unwrap() as u64
    }
    fn store_u8(&mut self, p: u64, v: i32) {
        self.store_u8.call(&mut self.store, (p as i64, v)).unwrap()
    }
    fn store_u64(&mut self, p: u64, v: u64) {
        self.store_u64
            .call(&mut self.store, (p as i64, v as i64))
            .unwrap()
    }
    fn input_load_u8(&mut self, i: u64) -> u8 {
        let v = self.input_load_u8.call(&mut self.store, i as i64).unwrap();
        assert!((0..256).contains(&v));
        v as u8
    }
    fn input_load_u64(&mut self, i: u64) -> u64 {
        self.input_load_u64.call(&mut self.store, i as i64).unwrap() as u64
    }
    fn input_set(&mut self, h: u64, n: u64) {
        self.input_set
            .call(&mut self.store, (h as i64, n as i64))
            .unwrap()
    }
    fn input(&mut self) -> (u64, u64) {
        let o = self.input_offset.call(&mut self.store, ()).unwrap() as u64;
        let l = self.input_length.call(&mut self.store, ()).unwrap() as u64;
        (o, l)
    }
    fn output_set(&mut self, h: u64, n: u64) {
        self.output_set
            .call(&mut self.store, (h as i64, n as i64))
            .unwrap()
    }
    fn output(&mut self) -> (u64, u64) {
        let o = self.output_offset.call(&mut self.store, ()).unwrap() as u64;
        let l = self.output_length.call(&mut self.store, ()).unwrap() as u64;
        (o, l)
    }
    fn error_set(&mut self, h: u64) {
        self.error_set.call(&mut self.store, h as i64).unwrap()
    }
    fn error_get(&mut self) -> u64 {
        self.error_get.call(&mut self.store, ()).unwrap() as u64
    }
    fn memory_bytes(&mut self) -> u64 {
        self.memory_bytes.call(&mut self.store, ()).unwrap() as u64
    }
    fn reset(&mut self) {
        self.reset.call(&mut self.store, ()).unwrap()
    }
    /// Host view of kernel memory: what the runtime reads through the base pointer.
    fn bytes(&self, p: u64, n: u64) -> &[u8] {
        &self.memory.data(&self.store)[p as usize..(p + n) as usize]
    }
}

/// What the kernel should hold.
#[derive(Default)]
struct Model {
    /// live handle -> the bytes the test wrote into it (exact length)
    live: BTreeMap<u64, Vec<u8>>,
    /// handles released or invalidated by reset (candidates for bogus frees)
    dead: Vec<u64>,
    input: (u64, u64),
    output: (u64, u64),
    error: u64,
    mem: u64,
    /// end of the highest block handed out since the last reset (granule-rounded)
    hwm: u64,
    /// set once an allocation may have found fresh space short (since the last reset)
    exhausted: bool,
}

impl Model {
    fn pick_live(&self, i: &Index) -> Option<u64> {
        if self.live.is_empty() {
            None
        } else {
            self.live.keys().nth(i.index(self.live.len())).copied()
        }
    }
    /// Some block (start, granule-rounded end) containing byte `p`.
    fn block_of(&self, p: u64) -> Option<(u64, u64)> {
        let (&h, b) = self.live.range(..=p).next_back()?;
        let end = h + gran(b.len() as u64);
        (p < end).then_some((h, end))
    }
    /// Record a raw store of `v` at `p` in whatever live blocks it touches.
    fn write(&mut self, p: u64, v: &[u8]) {
        for (i, &byte) in v.iter().enumerate() {
            let a = p + i as u64;
            if let Some((&h, b)) = self.live.range_mut(..=a).next_back() {
                if a - h < b.len() as u64 {
                    b[(a - h) as usize] = byte;
                }
            }
        }
    }
    fn released(&mut self, h: u64, len: u64) {
        // freeing the block that holds the input forgets the input (offset AND length)
        if self.input.0 >= h && self.input.0 < h + gran(len) {
            self.input = (0, 0);
        }
        self.dead.push(h);
    }
}

/// Interesting raw addresses, resolved against the current state.
#[derive(Clone, Copy, Debug)]
enum Addr {
    Zero,
    One,
    BelowData,
    DataStart,
    Random(u32),
    Live,
    LiveInterior(u8),
    Dead,
    MemMinus(u8),
    Mem,
    MemPlus(u8),
    Pow32,
    Pow63,
    MaxMinus(u8),
}

fn addr() -> impl Strategy<Value = Addr> {
    prop_oneof![
        1 => Just(Addr::Zero),
        1 => Just(Addr::One),
        1 => Just(Addr::BelowData),
        1 => Just(Addr::DataStart),
        1 => any::<u32>().prop_map(Addr::Random),
        3 => Just(Addr::Live),
        1 => any::<u8>().prop_map(Addr::LiveInterior),
        2 => Just(Addr::Dead),
        1 => (0u8..=16).prop_map(Addr::MemMinus),
        1 => Just(Addr::Mem),
        1 => any::<u8>().prop_map(Addr::MemPlus),
        1 => Just(Addr::Pow32),
        1 => Just(Addr::Pow63),
        1 => (0u8..=16).prop_map(Addr::MaxMinus),
    ]
}

fn resolve(a: Addr, i: &Index, m: &Model) -> u64 {
    match a {
        Addr::Zero => 0,
        Addr::One => 1,
        Addr::BelowData => DATA_START - 16,
        Addr::DataStart => DATA_START,
        Addr::Random(r) => r as u64 % (m.mem + 64),
        Addr::Live => m.pick_live(i).unwrap_or(DATA_START),
        Addr::LiveInterior(d) => m.pick_live(i).unwrap_or(DATA_START) + 1 + d as u64,
        Addr::Dead if !m.dead.is_empty() => m.dead[i.index(m.dead.len())],
        Addr::Dead => 2 * DATA_START,
        Addr::MemMinus(d) => m.mem - d as u64,
        Addr::Mem => m.mem,
        Addr::MemPlus(d) => m.mem + d as u64,
        Addr::Pow32 => 1 << 32,
        Addr::Pow63 => 1 << 63,
        Addr::MaxMinus(d) => u64::MAX - d as u64,
    }
}

#[derive(Clone, Copy, Debug)]
enum Len {
    Zero,
    Small(u16),
    OfLive,
    ToEnd,
    Mem,
    Max,
}

fn len() -> impl Strategy<Value = Len> {
    prop_oneof![
        1 => Just(Len::Zero),
        1 => any::<u16>().prop_map(Len::Small),
        2 => Just(Len::OfLive),
        1 => Just(Len::ToEnd),
        1 => Just(Len::Mem),
        1 => Just(Len::Max),
    ]
}

fn resolve_len(l: Len, h: u64, m: &Model) -> u64 {
    match l {
        Len::Zero => 0,
        Len::Small(n) => n as u64,
        Len::OfLive => m.live.get(&h).map_or(17, |b| b.len() as u64),
        Len::ToEnd => m.mem.wrapping_sub(h),
        Len::Mem => m.mem,
        Len::Max => u64::MAX,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(u64),
    /// allocate all fresh space but `slack` bytes: must not grow memory
    FillUp(u16),
    Free(Index),
    FreeRaw(Addr, Index),
    /// free every live block, then the whole data area must be one allocation again
    FreeAllCoalesce,
    StoreLive(Index, Index, u64, bool),
    StoreRaw(Addr, Index, u64, bool),
    LoadRaw(Addr, Index),
    LengthRaw(Addr, Index),
    InputSetLive(Index, Index),
    InputSetRaw(Addr, Index, Len),
    InputLoad(Index),
    OutputSet(Addr, Index, Len),
    ErrorSet(Addr, Index),
    Reset,
}

fn alloc_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        50 => 1u64..=64,
        30 => 1u64..=4096,
        4 => 1u64..=300_000,
        4 => prop::sample::select(vec![
            0,
            MAX_ALLOC + 1,
            1 << 32,
            (1 << 32) + 1,
            1 << 33,
            1 << 48,
            1 << 63,
            u64::MAX - 15,
            u64::MAX,
        ]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => alloc_size().prop_map(Op::Alloc),
        2 => (0u16..600).prop_map(Op::FillUp),
        15 => any::<Index>().prop_map(Op::Free),
        4 => (addr(), any::<Index>()).prop_map(|(a, i)| Op::FreeRaw(a, i)),
        1 => Just(Op::FreeAllCoalesce),
        10 => (any::<Index>(), any::<Index>(), any::<u64>(), any::<bool>())
            .prop_map(|(b, o, v, w)| Op::StoreLive(b, o, v, w)),
        4 => (addr(), any::<Index>(), any::<u64>(), any::<bool>())
            .prop_map(|(a, i, v, w)| Op::StoreRaw(a, i, v, w)),
        4 => (addr(), any::<Index>()).prop_map(|(a, i)| Op::LoadRaw(a, i)),
        4 => (addr(), any::<Index>()).prop_map(|(a, i)| Op::LengthRaw(a, i)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(b, l)| Op::InputSetLive(b, l)),
        2 => (addr(), any::<Index>(), len()).prop_map(|(a, i, l)| Op::InputSetRaw(a, i, l)),
        4 => any::<Index>().prop_map(Op::InputLoad),
        3 => (addr(), any::<Index>(), len()).prop_map(|(a, i, l)| Op::OutputSet(a, i, l)),
        3 => (addr(), any::<Index>()).prop_map(|(a, i)| Op::ErrorSet(a, i)),
        2 => Just(Op::Reset),
    ]
}

/// Checks of a freshly returned handle common to every successful allocation.
fn check_new_block(k: &Kernel, m: &Model, h: u64, n: u64) {
    assert_ne!(h, 0);
    assert_eq!(h % 16, 0, "handle {h} not 16-aligned");
    assert!(h >= DATA_START, "handle {h} below the data area");
    assert!(
        h + gran(n) <= m.mem,
        "block {h}+{n} outside memory ({})",
        m.mem
    );
    for (&g, b) in &m.live {
        let ge = g + gran(b.len() as u64);
        assert!(
            h + gran(n) <= g || ge <= h,
            "block {h}+{n} overlaps live block {g}+{}",
            b.len()
        );
    }
    // fresh space is handed out zeroed (after a reset and after guest stores past the bump
    // pointer included); recycled blocks keep their bytes (spec/kernel.md §3)
    if h >= m.hwm {
        assert!(
            k.bytes(h, n).iter().all(|&b| b == 0),
            "fresh block {h}+{n} not zeroed"
        );
    }
}

fn apply(k: &mut Kernel, m: &mut Model, op: &Op) {
    match op {
        Op::Alloc(n) => {
            let n = *n;
            let fresh_fits = n <= MAX_ALLOC && m.mem - m.hwm >= gran(n);
            if !fresh_fits {
                m.exhausted = true;
            }
            let h = k.alloc(n);
            if n == 0 || n > MAX_ALLOC {
                assert_eq!(h, 0, "alloc({n}) must fail cleanly");
                return;
            }
            // no memory limit here and memory can grow: modest requests always succeed
            assert_ne!(h, 0, "alloc({n}) failed");
            m.mem = k.memory_bytes();
            check_new_block(k, m, h, n);
            if !m.exhausted {
                // released blocks are not recycled before fresh space runs out (§9.4)
                assert_eq!(h, m.hwm, "alloc({n}) did not take fresh space");
            }
            m.hwm = m.hwm.max(h + gran(n));
            m.live.insert(h, k.bytes(h, n).to_vec());
        }
        Op::FillUp(slack) => {
            let Some(n) = (m.mem - m.hwm)
                .checked_sub(*slack as u64)
                .filter(|&n| n > 0)
            else {
                return;
            };
            let h = k.alloc(n);
            assert_eq!(
                k.memory_bytes(),
                m.mem,
                "alloc of available fresh space grew memory"
            );
            check_new_block(k, m, h, n);
            if !m.exhausted {
                assert_eq!(h, m.hwm);
            }
            m.hwm = m.hwm.max(h + gran(n));
            m.live.insert(h, k.bytes(h, n).to_vec());
        }
        Op::Free(i) => {
            let Some(h) = m.pick_live(i) else { return };
            k.free(h);
            let b = m.live.remove(&h).unwrap();
            m.released(h, b.len() as u64);
            assert_eq!(k.length(h), 0, "freed block still has a length");
            k.free(h); // double free: no-op
        }
        Op::FreeRaw(a, i) => {
            let h = resolve(*a, i, m);
            if m.live.contains_key(&h) {
                return;
            }
            k.free(h); // not a live block: no-op (checked by check_all)
            assert_eq!(k.length(h), 0);
        }
        Op::FreeAllCoalesce => {
            let hs: Vec<(u64, u64)> = m.live.iter().map(|(&h, b)| (h, b.len() as u64)).collect();
            for (h, n) in hs {
                k.free(h);
                m.live.remove(&h);
                m.released(h, n);
            }
            // released neighbours coalesce (and the top one returns to fresh space when needed):
            // the whole data area is one allocation again, without growth
            let n = m.mem - DATA_START;
            let h = k.alloc(n);
            assert_eq!(h, DATA_START, "free space did not coalesce");
            assert_eq!(k.memory_bytes(), m.mem, "coalesced allocation grew memory");
            check_new_block(k, m, h, n);
            k.free(h);
            m.released(h, n);
            m.exhausted = true;
            m.hwm = m.mem;
        }
        Op::StoreLive(b, o, v, wide) => {
            let Some(h) = m.pick_live(b) else { return };
            let n = m.live[&h].len() as u64;
            if *wide && n >= 8 {
                let p = h + o.index((n - 7) as usize) as u64;
                k.store_u64(p, *v);
                m.write(p, &v.to_le_bytes());
            } else {
                let p = h + o.index(n as usize) as u64;
                k.store_u8(p, *v as i32); // only the low 8 bits count
                m.write(p, &[*v as u8]);
            }
        }
        Op::StoreRaw(a, i, v, wide) => {
            // stores anywhere: in bounds they land in memory 0 (and may hit live blocks, which
            // the model follows); out of bounds they are ignored. The allocator must not care.
            let p = resolve(*a, i, m);
            let size = if *wide { 8 } else { 1 };
            let inside = p <= m.mem - size;
            let before: Vec<u8> = k.memory.data(&k.store).to_vec();
            if *wide {
                k.store_u64(p, *v);
            } else {
                k.store_u8(p, *v as i32);
            }
            let after = k.memory.data(&k.store);
            if inside {
                let bytes = v.to_le_bytes();
                assert_eq!(
                    &after[p as usize..(p + size) as usize],
                    &bytes[..size as usize]
                );
                m.write(p, &bytes[..size as usize]);
            } else {
                assert!(before == after, "out-of-range store at {p} changed memory");
            }
        }
        Op::LoadRaw(a, i) => {
            let p = resolve(*a, i, m);
            let b = k.load_u8(p);
            let w = k.load_u64(p);
            if p < m.mem {
                assert_eq!(b, k.bytes(p, 1)[0]);
            } else {
                assert_eq!(b, 0, "load_u8({p}) out of range");
            }
            if p <= m.mem - 8 {
                assert_eq!(w, u64::from_le_bytes(k.bytes(p, 8).try_into().unwrap()));
            } else {
                assert_eq!(w, 0, "load_u64({p}) out of range");
            }
            // and inside a live block the loads see what was stored
            if let Some((h, _)) = m.block_of(p) {
                let data = &m.live[&h];
                if p - h < data.len() as u64 {
                    assert_eq!(b, data[(p - h) as usize]);
                }
            }
        }
        Op::LengthRaw(a, i) => {
            let h = resolve(*a, i, m);
            let want = m.live.get(&h).map_or(0, |b| b.len() as u64);
            assert_eq!(k.length(h), want, "length({h})");
            assert_eq!(k.length_unsafe(h), want, "length_unsafe({h})");
        }
        Op::InputSetLive(b, l) => {
            let Some(h) = m.pick_live(b) else { return };
            let n = l.index(m.live[&h].len() + 1) as u64;
            k.input_set(h, n);
            m.input = (h, n);
        }
        Op::InputSetRaw(a, i, l) => {
            let h = resolve(*a, i, m);
            let n = resolve_len(*l, h, m);
            k.input_set(h, n);
            if h >= DATA_START && n <= m.mem && h <= m.mem - n {
                m.input = (h, n);
            }
        }
        Op::InputLoad(r) => {
            let (off, n) = m.input;
            let data = if n == 0 {
                Vec::new()
            } else {
                k.bytes(off, n).to_vec()
            };
            let mut idx = vec![
                0,
                1,
                7,
                8,
                n.wrapping_sub(8),
                n.wrapping_sub(7),
                n.wrapping_sub(1),
                n,
                n + 1,
                u64::MAX,
                u64::MAX - 3,
                u64::MAX - 7,
                u64::MAX - 8,
                1 << 63,
                1 << 32,
            ];
            idx.push(r.index(n as usize + 9) as u64);
            for i in idx {
                let want8 = if i < n { data[i as usize] } else { 0 };
                assert_eq!(k.input_load_u8(i), want8, "input_load_u8({i}), len {n}");
                // 0 whenever fewer than 8 bytes remain; never a partial word, never wrapping
                let want64 = if n >= 8 && i <= n - 8 {
                    u64::from_le_bytes(data[i as usize..i as usize + 8].try_into().unwrap())
                } else {
                    0
                };
                assert_eq!(k.input_load_u64(i), want64, "input_load_u64({i}), len {n}");
            }
        }
        Op::OutputSet(a, i, l) => {
            let h = resolve(*a, i, m);
            let n = resolve_len(*l, h, m);
            k.output_set(h, n);
            if h >= DATA_START && n <= m.mem && h <= m.mem - n {
                m.output = (h, n);
            }
        }
        Op::ErrorSet(a, i) => {
            let h = resolve(*a, i, m);
            k.error_set(h);
            if h == 0 || (DATA_START..m.mem).contains(&h) {
                m.error = h;
            }
        }
        Op::Reset => {
            k.reset();
            let old: Vec<u64> = m.live.keys().copied().collect();
            for &h in &old {
                assert_eq!(k.length(h), 0, "handle {h} survived reset");
                assert_eq!(k.length_unsafe(h), 0);
            }
            m.dead.extend(old);
            m.live.clear();
            m.input = (0, 0);
            m.output = (0, 0);
            m.error = 0;
            m.hwm = DATA_START;
            m.exhausted = false;
        }
    }
}

/// Invariants that hold after every operation.
fn check_all(k: &mut Kernel, m: &mut Model) {
    let mem = k.memory_bytes();
    assert!(mem >= m.mem, "memory shrank from {} to {mem}", m.mem);
    assert_eq!(
        mem,
        k.memory.data_size(&k.store) as u64,
        "memory_bytes is not the size of memory 0"
    );
    m.mem = mem;
    let live: Vec<(u64, Vec<u8>)> = m.live.iter().map(|(&h, b)| (h, b.clone())).collect();
    for (h, data) in live {
        assert_eq!(k.length(h), data.len() as u64, "length({h})");
        assert_eq!(k.length_unsafe(h), data.len() as u64, "length_unsafe({h})");
        assert!(
            k.bytes(h, data.len() as u64) == &data[..],
            "contents of block {h} changed"
        );
    }
    assert_eq!(k.input(), m.input, "input slots");
    assert_eq!(k.output(), m.output, "output slots");
    assert_eq!(k.error_get(), m.error, "error slot");
    // the input range is a live block whenever it was registered from one (§9.6)
    if m.input.0 != 0
        && m.live
            .get(&m.input.0)
            .is_some_and(|b| b.len() as u64 == m.input.1)
    {
        assert_eq!(k.length(m.input.0), m.input.1);
    }
}

fn run(ops: &[Op]) {
    let mut k = Kernel::new(module());
    let mut m = Model {
        hwm: DATA_START,
        ..Model::default()
    };
    m.mem = k.memory_bytes();
    assert_eq!(m.mem, 16 << 16, "kernel memory starts with 16 pages");
    for op in ops {
        apply(&mut k, &mut m, op);
        check_all(&mut k, &mut m);
    }
}

proptest! {
    #![proptest_config(PtConfig {
        cases: 64,
        failure_persistence: None,
        ..PtConfig::default()
    })]

    #[test]
    fn kernel_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run(&ops);
    }
}

/// Upstream's exports, plus the runtime's own under `extism-run:`.
#[test]
fn exports_match_upstream() {
    let module = module();
    // What only the host has: config and vars (src/host/).
    let imports: Vec<String> = module
        .imports()
        .map(|i| {
            let f = i.ty().func().cloned().expect("a function import");
            let types = |t: &mut dyn Iterator<Item = wasmtime::ValType>| {
                t.map(|t| t.to_string()).collect::<Vec<_>>().join(" ")
            };
            let (params, results) = (types(&mut f.params()), types(&mut f.results()));
            format!("{}::{} ({params}) -> ({results})", i.module(), i.name())
        })
        .collect();
    assert_eq!(
        imports,
        [
            "extism-run:host::lookup (i32 i64 i64 i64) -> (i64)",
            "extism-run:host::copy (i32 i64) -> ()",
            "extism-run:host::var_set (i64 i64 i64 i64) -> ()",
        ]
    );
    let want: &[(&str, &[&str], &[&str])] = &[
        ("alloc", &["i64"], &["i64"]),
        ("free", &["i64"], &[]),
        ("length", &["i64"], &["i64"]),
        ("length_unsafe", &["i64"], &["i64"]),
        ("load_u8", &["i64"], &["i32"]),
        ("load_u64", &["i64"], &["i64"]),
        ("store_u8", &["i64", "i32"], &[]),
        ("store_u64", &["i64", "i64"], &[]),
        ("input_load_u8", &["i64"], &["i32"]),
        ("input_load_u64", &["i64"], &["i64"]),
        ("input_set", &["i64", "i64"], &[]),
        ("input_length", &[], &["i64"]),
        ("input_offset", &[], &["i64"]),
        ("output_set", &["i64", "i64"], &[]),
        ("output_length", &[], &["i64"]),
        ("output_offset", &[], &["i64"]),
        ("error_set", &["i64"], &[]),
        ("error_get", &[], &["i64"]),
        ("memory_bytes", &[], &["i64"]),
        ("reset", &[], &[]),
        // Host functions the kernel implements, asking the host for the values.
        ("config_get", &["i64"], &["i64"]),
        ("var_get", &["i64"], &["i64"]),
        ("var_set", &["i64", "i64"], &[]),
        // The runtime's own (guests cannot import it): alloc without zeroing, for blocks the
        // host fills at once.
        ("extism-run:alloc_filled", &["i64"], &["i64"]),
        // The allocator itself, `(size, zero fresh space)`; guests' alloc calls link to it.
        ("extism-run:alloc", &["i64", "i32"], &["i64"]),
        // The host's entries around every call: reset plus the input block, and output
        // offset, output length and error handle at once.
        ("extism-run:begin", &["i64", "i64"], &["i64"]),
        ("extism-run:end", &[], &["i64", "i64", "i64"]),
        // The call number given to the last begin that completed (a call entry that failed
        // may have stopped before its own).
        ("extism-run:begun", &[], &["i64"]),
    ];
    let mut seen = 0;
    for e in module.exports() {
        match e.ty() {
            ExternType::Func(f) => {
                let (_, p, r) = want
                    .iter()
                    .find(|w| w.0 == e.name())
                    .unwrap_or_else(|| panic!("extra export {}", e.name()));
                let ps: Vec<String> = f.params().map(|t| t.to_string()).collect();
                let rs: Vec<String> = f.results().map(|t| t.to_string()).collect();
                assert_eq!(ps, *p, "{} params", e.name());
                assert_eq!(rs, *r, "{} results", e.name());
                seen += 1;
            }
            ExternType::Memory(mt) => {
                assert_eq!(e.name(), "memory");
                assert_eq!(mt.minimum(), 16);
                assert_eq!(mt.maximum(), None);
                assert!(!mt.is_64());
            }
            // State that kernel code inlined into guests reads (src/kernel_link.rs); guests
            // cannot import it.
            ExternType::Global(g) if e.name().starts_with("extism-run:") => {
                assert!(
                    [
                        "extism-run:input_offset",
                        "extism-run:input_length",
                        "extism-run:clean",
                        // read in place by the call entries kernel_link adds
                        "extism-run:output_offset",
                        "extism-run:output_length",
                        "extism-run:error",
                    ]
                    .contains(&e.name()),
                    "extra global {}",
                    e.name()
                );
                assert_eq!(g.content().to_string(), "i64");
                assert_eq!(g.mutability(), Mutability::Var);
            }
            ExternType::Global(g) => {
                assert!(
                    ["__heap_base", "__data_end"].contains(&e.name()),
                    "extra global {}",
                    e.name()
                );
                assert_eq!(g.content().to_string(), "i32");
                assert_eq!(g.mutability(), Mutability::Const);
            }
            _ => panic!("unexpected export {}", e.name()),
        }
    }
    assert_eq!(seen, want.len());
    // besides: the memory, two toolchain globals and six of the runtime's
    assert_eq!(module.exports().len(), want.len() + 9);
}

#[test]
fn absurd_allocations_fail_cleanly() {
    let mut k = Kernel::new(module());
    let mem = k.memory_bytes();
    for n in [
        0,
        MAX_ALLOC + 1,
        1 << 32,
        1 << 33,
        1 << 48,
        1 << 63,
        u64::MAX - 15,
        u64::MAX,
    ] {
        assert_eq!(k.alloc(n), 0, "alloc({n})");
    }
    assert_eq!(
        k.memory_bytes(),
        mem,
        "failed allocations must not grow memory"
    );
    let h = k.alloc(1);
    assert_eq!(h, DATA_START);
    assert_eq!(k.length(h), 1);
}

/// Growth is exactly what is missing, in both memories; contents survive it.
#[test]
fn growth_is_exact() {
    let mut k = Kernel::new(module());
    let mem = k.memory_bytes();
    let a = k.alloc(1000);
    k.store_u64(a, 0x0102030405060708);
    let b = k.alloc(mem); // needs everything + a bit more
    assert_ne!(b, 0);
    let want_pages = (b + gran(mem)).div_ceil(65536);
    assert_eq!(k.memory_bytes(), want_pages * 65536);
    assert_eq!(k.length(b), mem);
    assert_eq!(k.load_u64(a), 0x0102030405060708);
    assert!(k.bytes(b, mem).iter().all(|&x| x == 0));
    // memory 1 keeps covering memory 0: a block at the very end is fully usable
    let total = k.memory_bytes();
    let last = k.alloc(total - (b + gran(mem)));
    assert_eq!(k.length(last), total - last);
    assert_eq!(k.memory_bytes(), total);
    k.free(b);
    k.free(last);
    k.free(a);
    k.reset();
    assert_eq!(k.memory_bytes(), want_pages * 65536, "memory never shrinks");
}

/// Generation wrap-around after 2^32 resets: stale entries of the reused generation number must
/// not come back to life. The test builds a copy of the kernel that exports its generation
/// counter so it can jump close to the wrap.
#[test]
fn generation_wraparound() {
    let src = std::fs::read_to_string(WAT).unwrap();
    let decl = "(global $gen (mut i32) (i32.const 1))";
    assert!(src.contains(decl), "kernel.wat must declare {decl}");
    let patched = src.replace(
        decl,
        "(global $gen (export \"test_gen\") (mut i32) (i32.const 1))",
    );
    let module = Module::new(engine(), wat::parse_str(patched).unwrap()).unwrap();
    let mut k = Kernel::new(&module);
    // generation 1: live and released blocks
    let h0 = k.alloc(16);
    let h1 = k.alloc(40);
    let h2 = k.alloc(100);
    let _h3 = k.alloc(10);
    k.free(h2);
    assert_eq!((h0, h1), (DATA_START, DATA_START + 16));
    assert_eq!(k.length(h1), 40);
    let gen = k.instance.get_global(&mut k.store, "test_gen").unwrap();
    gen.set(&mut k.store, wasmtime::Val::I32(-2)).unwrap(); // 0xffff_fffe
    assert_eq!(k.length(h1), 0);
    k.reset(); // -> 0xffff_ffff
    let g = k.alloc(16);
    assert_eq!(g, DATA_START);
    k.reset(); // wraps: the table is wiped, generation 1 again
    assert_eq!(gen.get(&mut k.store).i32(), Some(1));
    // without the wipe, h1's entry (generation 1) would be live again
    assert_eq!(k.length(h1), 0, "stale entry of generation 1 revived");
    assert_eq!(k.length(g), 0);
    k.free(h1); // no-op
    k.free(h2);
    let x = k.alloc(16);
    assert_eq!(x, DATA_START);
    assert_eq!(k.length(x), 16);
    assert_eq!(k.length(h1), 0);
    assert_eq!(k.alloc(100), h1, "fresh space continues right after x");
}

/// A released block just below the fresh space, recycled whole, must stay allocated when a
/// later allocation finds fresh space short and gives free top blocks back to fresh space.
#[test]
fn recycled_top_block_survives_growth() {
    let mut k = Kernel::new(module());
    let mem = k.memory_bytes();
    let a = k.alloc(100);
    let top_len = 4000;
    let fill = k.alloc(mem - (a + gran(100)) - gran(top_len));
    let top = k.alloc(top_len);
    assert_eq!(top + gran(top_len), mem, "fresh space is now exhausted");
    k.free(top);
    let again = k.alloc(top_len); // fresh space empty: recycles the released top block whole
    assert_eq!(again, top);
    k.store_u64(again, 0x1122334455667788);
    let big = k.alloc(100_000); // nothing free fits: grows
    assert!(big >= mem && k.memory_bytes() > mem);
    assert_eq!(k.length(again), top_len);
    assert_eq!(k.load_u64(again), 0x1122334455667788);
    assert_eq!(k.length(fill), mem - (a + gran(100)) - gran(top_len));
    assert_eq!(k.length(a), 100);
}

/// `extism-run:begin` and `extism-run:end`, the host's one entry before and after each call,
/// do what the host's separate steps did: reset, an input block allocated as by
/// `extism-run:alloc_filled` and set as the input; output and error read back.
#[test]
fn begin_and_end_are_the_host_s_steps_in_one_entry() {
    let mut one = Kernel::new(module());
    let mut steps = Kernel::new(module());
    let begin: TypedFunc<(i64, i64), i64> = one.func("extism-run:begin");
    let end: TypedFunc<(), (i64, i64, i64)> = one.func("extism-run:end");
    let begun: TypedFunc<(), i64> = one.func("extism-run:begun");
    let alloc_filled: TypedFunc<i64, i64> = steps.func("extism-run:alloc_filled");
    assert_eq!(begun.call(&mut one.store, ()).unwrap(), 0);
    for (round, n) in [0u64, 1, 15, 16, 17, 4096, 70_000, 3 << 20, 1 << 33, 24]
        .into_iter()
        .enumerate()
    {
        // The same history in both: blocks, a store, an output and an error.
        for k in [&mut one, &mut steps] {
            let a = k.alloc(100 + round as u64);
            let b = k.alloc(3000);
            k.store_u64(b, round as u64);
            k.free(a);
            k.output_set(b, 8);
            k.error_set(if round % 2 == 0 { b } else { 0 });
        }
        let (o, l) = steps.output();
        let e = steps.error_get();
        let ended = end.call(&mut one.store, ()).unwrap();
        assert_eq!((ended.0 as u64, ended.1 as u64, ended.2 as u64), (o, l, e));
        // `begun`: the number given to the last begin (end and reset do not change it).
        let last = round as i64; // the previous round's begin
        assert_eq!(begun.call(&mut one.store, ()).unwrap(), last);
        one.reset();
        assert_eq!(begun.call(&mut one.store, ()).unwrap(), last);

        let h = begin
            .call(&mut one.store, (n as i64, round as i64 + 1))
            .unwrap() as u64;
        assert_eq!(
            begun.call(&mut one.store, ()).unwrap(),
            round as i64 + 1,
            "after begin({n})"
        );
        steps.reset();
        let expected = alloc_filled.call(&mut steps.store, n as i64).unwrap() as u64;
        if expected != 0 {
            steps.input_set(expected, n);
        }
        assert_eq!(h, expected, "handle for {n} bytes");
        assert_eq!(one.input(), steps.input(), "input after begin({n})");
        assert_eq!(one.memory_bytes(), steps.memory_bytes());
        assert_eq!(one.output(), (0, 0));
        assert_eq!(one.error_get(), 0);
        if h != 0 {
            assert_eq!(one.length(h), n);
        }
    }
}

/// `extism-run:lengths` and `extism-run:reply`, a host function's two kernel entries, do what
/// its separate steps did: `length` of each argument; `alloc_filled` of the result, then `free`
/// of each argument (nothing freed when the result's block cannot be had).
#[test]
fn config_and_var_functions_are_the_host_s_part_between_kernel_steps() {
    let mut one = Kernel::new(module());
    let mut steps = Kernel::new(module());
    let config_get: TypedFunc<i64, i64> = one.func("config_get");
    let var_get: TypedFunc<i64, i64> = one.func("var_get");
    let var_set: TypedFunc<(i64, i64), ()> = one.func("var_set");
    let alloc_filled: TypedFunc<i64, i64> = steps.func("extism-run:alloc_filled");
    let mut live: Vec<u64> = Vec::new();
    // Rounds whose value was copied (or empty), written in place.
    let mut ways = [0; 2];
    for round in 0..300u64 {
        // The same history in both kernels.
        let a = one.alloc(1 + round * 37 % 5000);
        assert_eq!(steps.alloc(1 + round * 37 % 5000), a);
        live.push(a);
        let pick = |i: u64| -> u64 {
            match i % 7 {
                0 => 0,
                1 => live[(i as usize * 13) % live.len()] + 8, // inside a block
                2 => u64::MAX - i,
                3 => 1 << 40,
                _ => live[(i as usize * 31) % live.len()],
            }
        };
        let (x, y) = (pick(round), pick(round / 3 + 5));
        let n = match round % 5 {
            0 => 0,
            1 => 1 << 33, // cannot be had
            _ => round * 101 % 9000 + 1,
        };
        // config_get or var_get of key x, whose value is n bytes: the host is asked for the
        // value by the key's block and length, and told the bump pointer, where it writes the
        // value when its block fits the memory from there (then the result's block is that
        // one); otherwise asked to copy it into the block allocated unzeroed for it. The key
        // is freed after that block was had, and kept when it wasn't.
        let (get, what) = match round % 2 {
            0 => (&config_get, 0),
            _ => (&var_get, 1),
        };
        one.store.data_mut().value_len = n;
        let size = one.memory_bytes();
        let h = get.call(&mut one.store, x as i64).unwrap() as u64;
        let expected = match n {
            0 => 0,
            n => alloc_filled.call(&mut steps.store, n as i64).unwrap() as u64,
        };
        assert_eq!(h, expected, "result handle for {n} bytes");
        let asked = std::mem::take(&mut one.store.data_mut().asked);
        let at = asked[0].1[3];
        assert_eq!(asked[0], ("lookup", [what, x, steps.length(x), at]));
        let in_place = n != 0 && at + gran(n) <= size;
        ways[in_place as usize] += 1;
        if in_place {
            assert_eq!(h, at, "round {round}: the block at the bump pointer");
        }
        // Nothing to copy for no value, nor for one in place.
        match n != 0 && !in_place {
            true => assert_eq!(asked[1..], [("copy", [what, h, 0, 0])], "round {round}"),
            false => assert_eq!(asked.len(), 1, "round {round}: {asked:?}"),
        }
        if n == 0 || expected != 0 {
            steps.free(x);
        }
        // var_set of x and y: both blocks and their lengths, then the value's freed and the
        // key's.
        var_set.call(&mut one.store, (x as i64, y as i64)).unwrap();
        let asked = std::mem::take(&mut one.store.data_mut().asked);
        assert_eq!(
            asked,
            [("var_set", [x, steps.length(x), y, steps.length(y)])]
        );
        steps.free(y);
        steps.free(x);
        for &b in &live {
            assert_eq!(one.length(b), steps.length(b), "round {round}, block {b}");
        }
        if h != 0 {
            live.push(h);
        }
        assert_eq!(one.memory_bytes(), steps.memory_bytes());
        // The same allocation history from here on.
        let (p, q) = (one.alloc(48), steps.alloc(48));
        assert_eq!(p, q, "round {round}");
    }
    assert!(ways[0] > 20 && ways[1] > 20, "{ways:?}");
}
