use std::time::Instant;
use wasmtime::*;
fn main() -> anyhow::Result<()> {
    let mut config = Config::new();
    config.epoch_interruption(true).wasm_multi_memory(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(
        &engine,
        wat::parse_str(
            r#"(module
        (import "h" "f" (func $f (param i64) (result i64)))
        (global $g (export "g") (mut i64) (i64.const 0))
        (func (export "id") (param i64 i64) (result i64 i64) (global.set $g (local.get 0)) (local.get 0) (local.get 1))
        (func (export "loop") (param $n i64) (result i64) (local $s i64)
          (loop $l (local.set $s (i64.add (local.get $s) (call $f (local.get $n))))
            (local.set $n (i64.sub (local.get $n) (i64.const 1)))
            (br_if $l (i64.ne (local.get $n) (i64.const 0))))
          (local.get $s)))"#,
        )?,
    )?;
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(1);
    let f = Func::wrap(&mut store, |x: i64| x + 1);
    let inst = Instance::new(&mut store, &module, &[f.into()])?;
    let id = inst.get_typed_func::<(i64, i64), (i64, i64)>(&mut store, "id")?;
    let lp = inst.get_typed_func::<i64, i64>(&mut store, "loop")?;
    let g = inst.get_global(&mut store, "g");
    let n = 10_000_000;
    for _ in 0..3 {
        let t = Instant::now();
        let mut s = 0;
        for i in 0..n {
            s += id.call(&mut store, (i, 1))?.0;
        }
        println!(
            "host->wasm entry: {:.1} ns ({s})",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        let t = Instant::now();
        let r = lp.call(&mut store, n)?;
        println!(
            "wasm->host call: {:.1} ns ({r})",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        let g = g.unwrap();
        let t = Instant::now();
        let mut s = 0;
        for _ in 0..n {
            s += g.get(&mut store).unwrap_i64();
        }
        println!(
            "global get: {:.1} ns ({s})",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
    Ok(())
}
