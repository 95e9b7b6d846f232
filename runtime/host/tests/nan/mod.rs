//! Canonicalising NaNs only where their bits can be observed (issue 14,
//! part 3): the rewritten component, compiled without the engine's
//! canonicalisation, must show every NaN's bits exactly as the original
//! does with it, by every path an attacker who has read `errand_host::nan`
//! would try, and must leave the bits of NaNs that arithmetic did not make
//! alone.

use errand_host::nan::{NanRewriteError, canonicalise_where_observable};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

/// Each export returns the bits of a NaN as some path observes them.
/// `$zero` is a mutable global so the compiler cannot fold `0/0`. Memory
/// holds a NaN with a payload at 64 (f64) and 128 (f32), written by
/// `init`, which every export calls first.
const PATHS: &[(&str, &str)] = &[
    ("reinterpret", "(i64.reinterpret_f64 (call $nan))"),
    (
        "reinterpret_f32",
        "(i64.extend_i32_u (i32.reinterpret_f32 (f32.div (global.get $zero32) (global.get $zero32))))",
    ),
    (
        "through_local",
        "(local.set $x (call $nan)) (i64.reinterpret_f64 (local.get $x))",
    ),
    (
        "store_then_load",
        "(f64.store (i32.const 8) (f64.div (global.get $zero) (global.get $zero))) (i64.load (i32.const 8))",
    ),
    (
        "store_f32_then_load",
        "(f32.store (i32.const 8) (f32.mul (f32.div (global.get $zero32) (global.get $zero32)) (f32.const 2))) (i64.load32_u (i32.const 8))",
    ),
    (
        "copysign_sign",
        "(i64.reinterpret_f64 (f64.copysign (f64.const 1) (f64.div (global.get $zero) (global.get $zero))))",
    ),
    (
        "copysign_sign_compared",
        "(i64.extend_i32_u (f64.lt (f64.copysign (f64.const 1) (f64.div (global.get $zero) (global.get $zero))) (f64.const 0)))",
    ),
    (
        "copysign_magnitude",
        "(i64.reinterpret_f64 (f64.copysign (f64.div (global.get $zero) (global.get $zero)) (f64.const -1)))",
    ),
    (
        "neg",
        "(i64.reinterpret_f64 (f64.neg (f64.div (global.get $zero) (global.get $zero))))",
    ),
    (
        "abs_stored",
        "(f64.store (i32.const 8) (f64.abs (f64.sub (global.get $zero) (f64.div (global.get $zero) (global.get $zero))))) (i64.load (i32.const 8))",
    ),
    (
        "select",
        "(i64.reinterpret_f64 (select (f64.div (global.get $zero) (global.get $zero)) (f64.const 1) (i32.const 1)))",
    ),
    (
        "select_with_loaded",
        "(f64.store (i32.const 8) (select (f64.load (i32.const 64)) (f64.sqrt (f64.const -1)) (global.get $flag))) (i64.load (i32.const 8))",
    ),
    (
        "loop_accumulator_stored",
        "(local.set $i (i32.const 0))
         (local.set $x (f64.const 0))
         (loop $l
           (local.set $x (f64.add (local.get $x) (f64.mul (f64.div (global.get $zero) (global.get $zero)) (f64.const 3))))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
         (f64.store (i32.const 8) (local.get $x))
         (i64.load (i32.const 8))",
    ),
    (
        "loop_swaps_loaded_and_arithmetic",
        // Two locals swap each iteration: the one stored has held both a
        // loaded NaN and an arithmetic one.
        "(local.set $x (f64.load (i32.const 64)))
         (local.set $y (f64.div (global.get $zero) (global.get $zero)))
         (local.set $i (i32.const 0))
         (loop $l
           (local.set $z (local.get $x))
           (local.set $x (local.get $y))
           (local.set $y (local.get $z))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $l (i32.lt_u (local.get $i) (global.get $count))))
         (f64.store (i32.const 8) (local.get $x))
         (i64.load (i32.const 8))",
    ),
    (
        "loop_swaps_back_to_loaded",
        // An even number of swaps: the stored NaN is the loaded one, whose
        // payload must survive.
        "(local.set $x (f64.load (i32.const 64)))
         (local.set $y (f64.div (global.get $zero) (global.get $zero)))
         (local.set $i (i32.const 0))
         (loop $l
           (local.set $z (local.get $x))
           (local.set $x (local.get $y))
           (local.set $y (local.get $z))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $l (i32.lt_u (local.get $i) (global.get $even))))
         (f64.store (i32.const 8) (local.get $x))
         (i64.load (i32.const 8))",
    ),
    (
        "call_argument",
        "(call $bits (f64.div (global.get $zero) (global.get $zero)))",
    ),
    ("call_result", "(i64.reinterpret_f64 (call $nan))"),
    (
        "global",
        "(global.set $g (f64.div (global.get $zero) (global.get $zero))) (i64.reinterpret_f64 (global.get $g))",
    ),
    (
        "block_result",
        "(i64.reinterpret_f64 (block (result f64) (f64.div (global.get $zero) (global.get $zero))))",
    ),
    (
        "branch_value",
        "(i64.reinterpret_f64 (block $b (result f64) (br_if $b (f64.div (global.get $zero) (global.get $zero)) (global.get $flag)) (drop) (f64.const 1)))",
    ),
    (
        "if_merge",
        "(if (global.get $flag)
           (then (local.set $x (f64.div (global.get $zero) (global.get $zero))))
           (else (local.set $x (f64.load (i32.const 64)))))
         (f64.store (i32.const 8) (local.get $x))
         (i64.load (i32.const 8))",
    ),
    (
        "overwritten_local",
        "(local.set $x (f64.load (i32.const 64)))
         (local.set $x (f64.div (global.get $zero) (global.get $zero)))
         (f64.store (i32.const 8) (local.get $x))
         (i64.load (i32.const 8))",
    ),
    (
        "tee_into_store",
        "(f64.store (i32.const 8) (local.tee $x (f64.div (global.get $zero) (global.get $zero)))) (i64.load (i32.const 8))",
    ),
    (
        "promote",
        "(i64.reinterpret_f64 (f64.promote_f32 (f32.div (global.get $zero32) (global.get $zero32))))",
    ),
    (
        "demote",
        "(i64.extend_i32_u (i32.reinterpret_f32 (f32.demote_f64 (f64.load (i32.const 64)))))",
    ),
    (
        "loaded_through_arithmetic",
        "(i64.reinterpret_f64 (f64.add (f64.load (i32.const 64)) (f64.const 1)))",
    ),
    (
        "rounding",
        "(i64.xor (i64.reinterpret_f64 (f64.floor (f64.load (i32.const 64))))
           (i64.xor (i64.reinterpret_f64 (f64.nearest (f64.div (global.get $zero) (global.get $zero))))
             (i64.reinterpret_f64 (f64.max (f64.const 1) (f64.load (i32.const 64))))))",
    ),
    (
        "branch_table_value",
        "(i64.reinterpret_f64 (block $b (result f64) (br_table $b $b (f64.div (global.get $zero) (global.get $zero)) (global.get $flag))))",
    ),
    (
        "if_without_else",
        "(local.set $x (f64.load (i32.const 64)))
         (if (global.get $flag) (then (local.set $x (f64.div (global.get $zero) (global.get $zero)))))
         (f64.store (i32.const 8) (local.get $x))
         (i64.load (i32.const 8))",
    ),
    (
        "typed_select",
        "(f64.store (i32.const 8) (select (result f64) (f64.mul (f64.div (global.get $zero) (global.get $zero)) (f64.const 2)) (f64.const 1) (global.get $flag))) (i64.load (i32.const 8))",
    ),
    (
        "multi_value_block",
        "(i64.reinterpret_f64 (block (result f64 f64) (f64.div (global.get $zero) (global.get $zero)) (f64.const 1)) (drop))",
    ),
    (
        "f32_loop_store",
        "(local.set $i (i32.const 0))
         (local.set $f (f32.const 0))
         (loop $l
           (local.set $f (f32.add (local.get $f) (f32.div (global.get $zero32) (global.get $zero32))))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
         (f32.store (i32.const 8) (local.get $f))
         (i64.load32_u (i32.const 8))",
    ),
    (
        "dead_code",
        "(block $b (br $b) (f64.store (i32.const 8) (f64.add (f64.const 1) (f64.div (global.get $zero) (global.get $zero)))))
         (f64.store (i32.const 16) (f64.div (global.get $zero) (global.get $zero)))
         (i64.load (i32.const 16))",
    ),
    (
        "returned_early",
        "(if (global.get $flag) (then (return (i64.reinterpret_f64 (f64.div (global.get $zero) (global.get $zero))))))
         (i64.const 0)",
    ),
    // NaNs that arithmetic did not make keep their bits in every mode.
    (
        "loaded_stored_unchanged",
        "(f64.store (i32.const 8) (f64.load (i32.const 64))) (i64.load (i32.const 8))",
    ),
    (
        "loaded_f32_negated",
        "(f32.store (i32.const 8) (f32.neg (f32.load (i32.const 128)))) (i64.load32_u (i32.const 8))",
    ),
    (
        "constant_stored",
        "(f64.store (i32.const 8) (f64.const nan:0x12345)) (i64.load (i32.const 8))",
    ),
    // Absorbed: no bits reach the result.
    (
        "compared_and_truncated",
        "(i64.add (i64.extend_i32_u (f64.eq (f64.div (global.get $zero) (global.get $zero)) (f64.const 0)))
           (i64.trunc_sat_f64_s (f64.div (global.get $zero) (global.get $zero))))",
    ),
];

/// The core module's fields.
fn fields() -> String {
    let mut funcs = String::new();
    for (name, body) in PATHS {
        funcs.push_str(&format!(
            "(func (export \"{name}\") (result i64) (local $x f64) (local $y f64) (local $z f64) (local $i i32) (local $f f32)
               (call $init) {body})\n"
        ));
    }
    format!(
        r#"
  (memory 1)
  (global $zero (mut f64) (f64.const 0))
  (global $zero32 (mut f32) (f32.const 0))
  (global $g (mut f64) (f64.const 0))
  (global $flag (mut i32) (i32.const 1))
  (global $count (mut i32) (i32.const 3))
  (global $even (mut i32) (i32.const 4))
  (func $init
    (i64.store (i32.const 64) (i64.const 0x7ff4000000000abc))
    (i32.store (i32.const 128) (i32.const 0x7fa00abc)))
  (func $nan (result f64) (f64.div (global.get $zero) (global.get $zero)))
  (func $bits (param f64) (result i64) (i64.reinterpret_f64 (local.get 0)))
  {funcs}"#
    )
}

fn component() -> Vec<u8> {
    let mut lifts = String::new();
    for (name, _) in PATHS {
        lifts.push_str(&format!(
            "(func (export \"{}\") (result u64) (canon lift (core func $i \"{name}\")))\n",
            name.replace('_', "-")
        ));
    }
    wat::parse_str(format!(
        "(component (core module $m {}) (core instance $i (instantiate $m)) {lifts})",
        fields()
    ))
    .unwrap()
}

/// Every path's bits, compiled with or without the engine's
/// canonicalisation.
fn observe(component: &[u8], canonicalise: bool) -> Vec<u64> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .cranelift_nan_canonicalization(canonicalise);
    let engine = Engine::new(&config).unwrap();
    let c = Component::new(&engine, component).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &c).unwrap();
    PATHS
        .iter()
        .map(|(name, _)| {
            let f = instance
                .get_typed_func::<(), (u64,)>(&mut store, &name.replace('_', "-"))
                .unwrap();
            f.call(&mut store, ()).unwrap().0
        })
        .collect()
}

#[test]
fn nan_bits_observed_every_way_are_those_of_canonicalisation_everywhere() {
    let original = component();
    let rewritten = canonicalise_where_observable(&original).unwrap();
    let canonical = observe(&original, true);
    let selective = observe(&rewritten.bytes, false);
    let native = observe(&original, false);
    for (i, (name, _)) in PATHS.iter().enumerate() {
        assert_eq!(
            selective[i], canonical[i],
            "{name}: {:#018x} where canonicalisation everywhere gives {:#018x}",
            selective[i], canonical[i]
        );
    }
    // The payload NaNs that arithmetic did not make keep their bits.
    let at = |n: &str| PATHS.iter().position(|(p, _)| *p == n).unwrap();
    assert_eq!(
        selective[at("loaded_stored_unchanged")],
        0x7ff4_0000_0000_0abc
    );
    assert_eq!(
        selective[at("loop_swaps_back_to_loaded")],
        0x7ff4_0000_0000_0abc
    );
    assert_eq!(selective[at("loaded_f32_negated")], 0xffa0_0abc);
    assert_eq!(selective[at("constant_stored")], 0x7ff0_0000_0001_2345);
    assert_eq!(selective[at("store_then_load")], 0x7ff8_0000_0000_0000);
    assert_eq!(selective[at("copysign_sign_compared")], 0);
    // The paths do observe: without any canonicalisation x86-64 makes its
    // own NaN (sign bit set) and the bits differ.
    if cfg!(target_arch = "x86_64") {
        for name in [
            "reinterpret",
            "store_then_load",
            "copysign_sign",
            "copysign_sign_compared",
            "through_local",
            "loop_accumulator_stored",
            "loop_swaps_loaded_and_arithmetic",
            "call_argument",
            "global",
            "if_merge",
            "overwritten_local",
            "tee_into_store",
            "neg",
            "branch_table_value",
            "if_without_else",
            "typed_select",
            "f32_loop_store",
            "returned_early",
        ] {
            assert_ne!(
                native[at(name)],
                canonical[at(name)],
                "{name} observes nothing"
            );
        }
    }
    // Absorbed results are not canonicalised: fewer checks than float
    // operations.
    assert!(rewritten.after_arithmetic + rewritten.at_observation < rewritten.arithmetic);
}

#[test]
fn the_rewrite_is_deterministic_and_keeps_a_component_without_floats_working() {
    let c = component();
    let a = canonicalise_where_observable(&c).unwrap();
    let b = canonicalise_where_observable(&c).unwrap();
    assert_eq!(a.bytes, b.bytes);
    let plain = wat::parse_str(errand_host::testing::spin_command_wat(10)).unwrap();
    let r = canonicalise_where_observable(&plain).unwrap();
    assert_eq!(
        (r.arithmetic, r.after_arithmetic, r.at_observation),
        (0, 0, 0)
    );
    wasmparser::Validator::new().validate_all(&r.bytes).unwrap();
}

#[test]
fn vector_float_arithmetic_is_left_to_the_engine() {
    let c = wat::parse_str(errand_host::testing::command_wat(
        r#"(func (export "run") (result i32)
        (i32x4.extract_lane 0 (f32x4.div (v128.const f32x4 0 0 0 0) (v128.const f32x4 0 0 0 0)))
        (i32.const 0x7fc00000) (i32.ne))"#,
    ))
    .unwrap();
    assert!(matches!(
        canonicalise_where_observable(&c),
        Err(NanRewriteError::VectorFloat(_))
    ));
    // The host falls back to the engine's canonicalisation, and says so.
    let h = errand_host::Host::new().unwrap();
    let p = h.prepare_with(&c, errand_host::NanMode::Selective).unwrap();
    assert_eq!(p.nan_mode(), errand_host::NanMode::Canonical);
    assert_eq!(
        p.fingerprint(),
        h.platform_for(errand_host::NanMode::Canonical).engine
    );
    let again = h.prepare_with(&c, errand_host::NanMode::Selective).unwrap();
    assert!(std::sync::Arc::ptr_eq(&p, &again));
}

#[test]
fn malformed_components_are_refused_without_a_panic() {
    // Truncations and bit flips of a real tool: an error or a rewrite that
    // validates, never a panic.
    let tool = errand_example_tools::THUMBNAIL;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut bytes = tool.to_vec();
        if round % 4 == 0 {
            bytes.truncate((next() as usize) % bytes.len());
        } else {
            for _ in 0..1 + round % 8 {
                let i = (next() as usize) % bytes.len();
                bytes[i] ^= 1 << (next() % 8);
            }
        }
        if let Ok(r) = canonicalise_where_observable(&bytes) {
            wasmparser::Validator::new().validate_all(&r.bytes).unwrap();
        }
    }
    assert!(matches!(
        canonicalise_where_observable(b"\0asm\x0d\0\x01\0garbage"),
        Err(NanRewriteError::Invalid(_))
    ));
}

#[test]
fn a_run_canonicalised_where_observable_replays_exactly_and_computes_what_canonicalisation_everywhere_does()
 {
    use errand_host::NanMode;
    let h = super::host();
    let png = imagegen::encode_png(&imagegen::render("a harbour at dusk", 96, 8)).unwrap();
    let thumbnail = super::tool("thumbnail");
    let params = [("max", "40")];
    let i = super::inv(&png, &params, errand_host::Limits::default());
    let mut runs = Vec::new();
    for mode in [NanMode::Canonical, NanMode::Selective] {
        let p = h.prepare_with(thumbnail, mode).unwrap();
        assert_eq!(p.nan_mode(), mode);
        let e = h.run(&p, &i).unwrap();
        assert!(e.outcome.is_ok(), "{mode:?}: {:?}", e.outcome);
        runs.push(e);
    }
    assert_eq!(runs[0].output, runs[1].output);
    // The inserted checks are metered.
    assert_ne!(runs[0].fuel_consumed, runs[1].fuel_consumed);
    let e = &runs[1];
    assert_eq!(e.engine, h.platform().engine);
    let key = errand_core::SecretKey::from_seed([3; 32]);
    let receipt = super::sign(&h, &key, thumbnail, &i, e);
    // Replayed from the receipt alone on another host, with the manifest:
    // same settings, output, fuel and trace.
    let manifest: errand_core::manifest::Manifest = toml::from_str(include_str!(
        "../../../../examples/tools/thumbnail/capability.toml"
    ))
    .unwrap();
    assert_eq!(NanMode::for_manifest(&manifest), NanMode::Selective);
    let r = errand_host::replay(
        &super::host(),
        receipt.body(),
        None,
        thumbnail,
        &png,
        e.trace.as_deref(),
        Some(&manifest),
    )
    .unwrap();
    assert!(r.matched(), "{:#?}", r.report);
    assert_eq!(r.execution.fuel_consumed, e.fuel_consumed);
}

/// Random programs over three f64 locals and memory: arithmetic on NaNs of
/// every kind (made by `0/0`, loaded with a payload, constant), through
/// `fneg`, `fabs`, `copysign`, `select`, stores, calls, branches and loops,
/// ending in the bits of everything. A seeded generator, so a failure
/// reproduces.
struct Gen {
    seed: u64,
}

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed % n
    }

    fn local(&mut self) -> &'static str {
        ["$a", "$b", "$c"][self.next(3) as usize]
    }

    fn addr(&mut self) -> u64 {
        8 * self.next(4)
    }

    fn expr(&mut self, depth: u32) -> String {
        let leaf = depth == 0 || self.next(3) == 0;
        if leaf {
            return match self.next(6) {
                0 | 1 => format!("(local.get {})", self.local()),
                2 => format!("(f64.load (i32.const {}))", self.addr()),
                3 => "(f64.div (global.get $zero) (global.get $zero))".into(),
                4 => [
                    "(f64.const 1.5)",
                    "(f64.const -0)",
                    "(f64.const nan:0x5)",
                    "(f64.const inf)",
                ][self.next(4) as usize]
                    .into(),
                _ => "(f64.load (i32.const 64))".into(),
            };
        }
        let d = depth - 1;
        match self.next(9) {
            0..=2 => {
                let op = ["add", "sub", "mul", "div", "min", "max"][self.next(6) as usize];
                format!("(f64.{op} {} {})", self.expr(d), self.expr(d))
            }
            3 => {
                let op = ["neg", "abs", "sqrt", "floor", "ceil", "trunc", "nearest"]
                    [self.next(7) as usize];
                format!("(f64.{op} {})", self.expr(d))
            }
            4 => format!("(f64.copysign {} {})", self.expr(d), self.expr(d)),
            5 => format!(
                "(select {} {} (i32.and (global.get $flag) (i32.const {})))",
                self.expr(d),
                self.expr(d),
                self.next(2)
            ),
            6 => format!("(f64.promote_f32 (f32.demote_f64 {}))", self.expr(d)),
            7 => format!("(call $id {})", self.expr(d)),
            _ => format!(
                "(f64.convert_i32_s (f64.lt {} {}))",
                self.expr(d),
                self.expr(d)
            ),
        }
    }

    fn stmts(&mut self, depth: u32, n: u64) -> String {
        (0..1 + self.next(n))
            .map(|_| self.stmt(depth))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stmt(&mut self, depth: u32) -> String {
        let nested = depth > 0 && self.next(3) == 0;
        if !nested {
            return if self.next(2) == 0 {
                format!("(local.set {} {})", self.local(), self.expr(3))
            } else {
                format!("(f64.store (i32.const {}) {})", self.addr(), self.expr(3))
            };
        }
        let d = depth - 1;
        match self.next(3) {
            0 => format!(
                "(if (f64.lt {} (f64.const 1)) (then {}) (else {}))",
                self.expr(2),
                self.stmts(d, 3),
                self.stmts(d, 3)
            ),
            1 => {
                let counter = format!("$i{depth}");
                format!(
                    "(local.set {counter} (i32.const 0))
                     (loop $l{depth} {}
                       (local.set {counter} (i32.add (local.get {counter}) (i32.const 1)))
                       (br_if $l{depth} (i32.lt_u (local.get {counter}) (i32.const 3))))",
                    self.stmts(d, 3)
                )
            }
            _ => format!(
                "(block $b{depth} {} (br_if $b{depth} (f64.ge {} (f64.const 0))) {})",
                self.stmts(d, 2),
                self.expr(2),
                self.stmts(d, 2)
            ),
        }
    }
}

#[test]
fn random_programs_compute_what_canonicalisation_everywhere_does() {
    const PROGRAMS: usize = 300;
    let mut g = Gen {
        seed: 0x2545_f491_4f6c_dd1d,
    };
    let mut funcs = String::new();
    let mut lifts = String::new();
    for n in 0..PROGRAMS {
        let body = g.stmts(3, 6);
        funcs.push_str(&format!(
            "(func (export \"p{n}\") (result i64)
               (local $a f64) (local $b f64) (local $c f64) (local $i1 i32) (local $i2 i32) (local $i3 i32)
               (call $init)
               {body}
               (i64.xor (i64.xor (i64.reinterpret_f64 (local.get $a)) (i64.rotl (i64.reinterpret_f64 (local.get $b)) (i64.const 1)))
                 (i64.xor (i64.rotl (i64.reinterpret_f64 (local.get $c)) (i64.const 2))
                   (i64.xor (i64.xor (i64.load (i32.const 0)) (i64.rotl (i64.load (i32.const 8)) (i64.const 3)))
                     (i64.xor (i64.rotl (i64.load (i32.const 16)) (i64.const 4)) (i64.rotl (i64.load (i32.const 24)) (i64.const 5)))))))\n"
        ));
        lifts.push_str(&format!(
            "(func (export \"p{n}\") (result u64) (canon lift (core func $i \"p{n}\")))\n"
        ));
    }
    let component = wat::parse_str(format!(
        r#"(component
  (core module $m
    (memory 1)
    (global $zero (mut f64) (f64.const 0))
    (global $flag (mut i32) (i32.const 1))
    (func $init
      (memory.fill (i32.const 0) (i32.const 0) (i32.const 32))
      (i64.store (i32.const 64) (i64.const 0xfff4000000000abc)))
    (func $id (param f64) (result f64) (local.get 0))
    {funcs})
  (core instance $i (instantiate $m))
  {lifts})"#
    ))
    .unwrap();
    let rewritten = canonicalise_where_observable(&component).unwrap();
    let run = |bytes: &[u8], canonicalise: bool| {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .cranelift_nan_canonicalization(canonicalise);
        let engine = Engine::new(&config).unwrap();
        let c = Component::new(&engine, bytes).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine).instantiate(&mut store, &c).unwrap();
        (0..PROGRAMS)
            .map(|n| {
                instance
                    .get_typed_func::<(), (u64,)>(&mut store, &format!("p{n}"))
                    .unwrap()
                    .call(&mut store, ())
                    .unwrap()
                    .0
            })
            .collect::<Vec<_>>()
    };
    let canonical = run(&component, true);
    let selective = run(&rewritten.bytes, false);
    let native = run(&component, false);
    let differ = (0..PROGRAMS).filter(|&n| native[n] != canonical[n]).count();
    for n in 0..PROGRAMS {
        assert_eq!(selective[n], canonical[n], "program p{n} differs");
    }
    // The programs do observe NaN bits: on x86-64, many differ without
    // canonicalisation.
    if cfg!(target_arch = "x86_64") {
        assert!(
            differ > PROGRAMS / 10,
            "only {differ} programs observe NaN bits"
        );
    }
    assert!(rewritten.after_arithmetic + rewritten.at_observation < rewritten.arithmetic);
}

/// 20,000 float locals and 3,000 loops that branch to themselves: every
/// back edge would carry every local's state.
fn slow_to_analyse() -> Vec<u8> {
    let locals = "f32 ".repeat(20_000);
    let loops = "(loop (br_if 0 (global.get $flag)))".repeat(3_000);
    wat::parse_str(errand_host::testing::command_wat(&format!(
        r#"(global $flag (mut i32) (i32.const 0))
      (func (export "run") (result i32) (local {locals}) {loops} (i32.const 0))"#
    )))
    .unwrap()
}

#[test]
fn a_component_built_to_make_the_analysis_slow_falls_back_within_its_budget() {
    let c = slow_to_analyse();
    match canonicalise_where_observable(&c) {
        Err(NanRewriteError::Budget(budget)) => {
            assert!(budget < 1 << 24, "budget {budget} for {} bytes", c.len())
        }
        other => panic!("expected the budget to run out: {other:?}"),
    }
    // It still runs, canonicalised by the engine.
    let h = errand_host::Host::new().unwrap();
    let p = h.prepare(&c).unwrap();
    assert_eq!(p.nan_mode(), errand_host::NanMode::Canonical);
    let e = h
        .run(&p, &super::inv(b"", &[], errand_host::Limits::default()))
        .unwrap();
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    // The example tools need under a quarter of theirs (32 units a byte,
    // plus a base).
    for name in ["thumbnail", "imagegen", "markdown"] {
        let tool = super::tool(name);
        let r = canonicalise_where_observable(tool).unwrap();
        assert!(r.work < tool.len() as u64 * 8, "{name}: {} units", r.work);
    }
}

/// A fallback was remembered in memory only, so every new process (each
/// `errand run`, `errand verify --replay`, a restarted node) repeated the
/// analysis to its budget before falling back: about 2 s of a release
/// build's time for the JavaScript json-check, before it even loaded its
/// compiled code from the disk cache.
#[test]
fn a_fallback_is_noted_in_the_disk_cache_so_a_restarted_host_does_not_rewrite_again() {
    use errand_host::{Host, HostConfig, NanMode};
    let dir = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let notes = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "fallback"))
            .collect::<Vec<_>>()
    };
    let c = slow_to_analyse();
    let digest = errand_core::Digest::of(&c);
    let first = Host::with_config(config()).unwrap();
    assert!(first.cached_with(&digest, NanMode::Selective).is_none());
    let p = first.prepare(&c).unwrap();
    assert_eq!(p.nan_mode(), NanMode::Canonical);

    // A restart: the new host has the component ready for the default
    // mode from its disk cache alone (`cached_with` never compiles, so it
    // never tries the rewrite), compiled with the engine's
    // canonicalisation, and runs it.
    let second = Host::with_config(config()).unwrap();
    let again = second
        .cached_with(&digest, NanMode::Selective)
        .expect("the fallback is remembered across a restart");
    assert_eq!(again.nan_mode(), NanMode::Canonical);
    assert_eq!(
        again.fingerprint(),
        second.platform_for(NanMode::Canonical).engine
    );
    let e = second
        .run(
            &again,
            &super::inv(b"", &[], errand_host::Limits::default()),
        )
        .unwrap();
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);

    // One note, beside the compiled code, saying why.
    let found = notes();
    assert_eq!(found.len(), 1, "{found:?}");
    let name = found[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&digest.to_string()), "{name}");
    let why = std::fs::read_to_string(&found[0]).unwrap();
    assert!(why.contains("units of work"), "{why}");

    // The compiled code evicted, the note kept: the component is compiled
    // again, for the engine's canonicalisation.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let third = Host::with_config(config()).unwrap();
    assert!(third.cached_with(&digest, NanMode::Selective).is_none());
    assert_eq!(third.prepare(&c).unwrap().nan_mode(), NanMode::Canonical);
    assert!(third.cached_with(&digest, NanMode::Canonical).is_some());

    // A component that rewrites leaves no note, and its own mode's code.
    let tool = super::tool("imagegen");
    let tool_digest = errand_core::Digest::of(tool);
    let p = third.prepare(tool).unwrap();
    assert_eq!(p.nan_mode(), NanMode::Selective);
    assert_eq!(notes().len(), 1);
    let fourth = Host::with_config(config()).unwrap();
    let cached = fourth
        .cached_with(&tool_digest, NanMode::Selective)
        .unwrap();
    assert_eq!(cached.nan_mode(), NanMode::Selective);

    // A note is taken without trying the rewrite: one planted for that
    // component (its compiled code gone) makes a new host compile it for
    // the engine's canonicalisation, and its runs say so. That is all a
    // planted note can do: the outputs are the same, the fingerprint true.
    let suffix = name.strip_prefix(&digest.to_string()).unwrap();
    let planted = dir.path().join(format!("{tool_digest}{suffix}"));
    std::fs::write(&planted, "planted\n").unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let fifth = Host::with_config(config()).unwrap();
    let p = fifth.prepare(tool).unwrap();
    assert_eq!(p.nan_mode(), NanMode::Canonical);
    assert_eq!(
        p.fingerprint(),
        fifth.platform_for(NanMode::Canonical).engine
    );
    let i = super::inv(
        b"a lighthouse in fog",
        &[("size", "48")],
        errand_host::Limits::default(),
    );
    let canonical = fifth.run(&p, &i).unwrap();
    let rewritten = fourth.run(&cached, &i).unwrap();
    assert!(canonical.outcome.is_ok(), "{:?}", canonical.outcome);
    assert_eq!(canonical.output, rewritten.output);
}

#[test]
fn a_receipt_in_a_mode_this_host_cannot_compile_the_component_for_is_not_judged() {
    use errand_host::NanMode;
    // Vector float arithmetic: the rewrite refuses, so this host runs the
    // component canonicalised by the engine.
    let c = wat::parse_str(errand_host::testing::command_wat(
        r#"(func (export "run") (result i32)
        (i32x4.extract_lane 0 (f32x4.add (v128.const f32x4 1 1 1 1) (v128.const f32x4 1 1 1 1)))
        (i32.const 0x40000000) (i32.ne))"#,
    ))
    .unwrap();
    let h = super::host();
    let p = h.prepare(&c).unwrap();
    assert_eq!(p.nan_mode(), NanMode::Canonical);
    let i = super::inv(b"", &[], errand_host::Limits::default());
    let e = h.run(&p, &i).unwrap();
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    let key = errand_core::SecretKey::from_seed([4; 32]);
    let receipt = super::sign(&h, &key, &c, &i, &e);
    assert!(
        errand_host::replay(&h, receipt.body(), None, &c, b"", None, None)
            .unwrap()
            .matched()
    );
    // A receipt claiming the rewritten mode cannot be replayed here: an
    // error (this side could not replay), not a mismatch.
    let mut claimed = receipt.body().clone();
    claimed.platform.engine = h.platform_for(NanMode::Selective).engine;
    match errand_host::replay(&h, &claimed, None, &c, b"", None, None) {
        Err(errand_host::ReplayError::Mode { mode, ran }) => {
            assert_eq!((mode, ran), (NanMode::Selective, NanMode::Canonical))
        }
        other => panic!("expected ReplayError::Mode, got {other:?}"),
    }
}

#[test]
fn one_branch_table_to_many_blocks_cannot_take_the_analysis_past_its_budget() {
    // 20,000 float locals and one `br_table` out of 2,000 nested blocks:
    // each first branch to a block copies every local's state.
    let locals = "f64 ".repeat(20_000);
    let depth = 2_000;
    let labels: String = (0..depth).map(|d| format!("{d} ")).collect();
    let c = wat::parse_str(errand_host::testing::command_wat(&format!(
        r#"(global $flag (mut i32) (i32.const 0))
      (func (export "run") (result i32) (local {locals})
        {}(br_table {labels}(global.get $flag)){}
        (i32.const 0))"#,
        "(block ".repeat(depth),
        ")".repeat(depth),
    )))
    .unwrap();
    assert!(matches!(
        canonicalise_where_observable(&c),
        Err(NanRewriteError::Budget(_))
    ));
}

#[test]
fn a_receipt_from_another_architecture_is_replayed_in_the_mode_it_ran_in() {
    use errand_host::NanMode;
    let h = super::host();
    let other = if cfg!(target_arch = "aarch64") {
        "x86_64"
    } else {
        "aarch64"
    };
    for mode in [NanMode::Canonical, NanMode::Native, NanMode::Selective] {
        let here = h.settings_for(mode);
        let arch = format!("arch={};", std::env::consts::ARCH);
        assert!(here.contains(&arch), "{here}");
        let there =
            errand_core::Digest::of(here.replace(&arch, &format!("arch={other};")).as_bytes());
        assert_eq!(h.nan_mode_of(&there), None);
        assert_eq!(h.nan_mode_on_any_arch(&there), Some(mode));
    }
    assert_eq!(
        h.nan_mode_on_any_arch(&errand_core::Digest::of(b"another engine")),
        None
    );
}
