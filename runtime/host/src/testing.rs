//! Small components written in the component text format, for tests,
//! benchmarks and documentation. Each is a WASI command (`wasi:cli/run`)
//! with no imports, so it needs nothing from the host but an entry point.

/// Wraps a core module that exports `run: func() -> i32` (0 for success)
/// into a WASI command component.
pub fn command_wat(core_module: &str) -> String {
    format!(
        r#"(component
  (core module $m {core_module})
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.6" (instance $inst))
)"#
    )
}

/// A WASI command that succeeds at once.
pub const ECHO_COMMAND_WAT: &str = r#"(component
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.6" (instance $inst))
)"#;

/// A WASI command whose `run` spins `n` iterations of integer arithmetic,
/// then succeeds: a pure-compute workload.
pub fn spin_command_wat(n: u32) -> String {
    command_wat(&format!(
        r#"(func (export "run") (result i32) (local $i i32) (local $x i32)
      (local.set $x (i32.const 1))
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
        (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245)) (i32.const 12345)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
      (i32.and (local.get $x) (i32.const 0)))"#
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn echo_is_command_wat_of_a_trivial_module() {
        let a = super::command_wat(r#"(func (export "run") (result i32) i32.const 0)"#);
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(norm(&a), norm(super::ECHO_COMMAND_WAT));
    }
}
