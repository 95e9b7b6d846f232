//! NaN canonicalisation only where a NaN's bits can be observed.
//!
//! WebAssembly leaves the sign and payload of a NaN that float arithmetic
//! produces to the CPU. Cranelift's canonicalisation replaces every such NaN
//! with the canonical one after *every* float operation, which costs a
//! compare and a select each time (1.5–2.6x on float-heavy tools). Most of
//! those results can never show their bits: they are consumed by more
//! arithmetic (whose own NaN result is handled in turn), by a comparison
//! (unordered whatever the bits), by a float-to-integer truncation (a trap or
//! 0 whatever the bits) or dropped.
//!
//! [`canonicalise_where_observable`] rewrites each core module of a component
//! so that the canonicalisation Cranelift would do is done by the module
//! itself, and only where an arithmetic NaN's bits may be observed. The
//! rewritten component, compiled *without* Cranelift's canonicalisation,
//! computes the same outputs as the original with it, on every
//! architecture. What differs is what the inserted checks cost: fuel (they
//! are metered like any other instruction, so also the guest's fuel-derived
//! monotonic clock, and whether a tight fuel limit is reached) and stack
//! frames (where deep recursion overflows). The engine fingerprint names the
//! mode, so a replay runs the same rewrite and agrees on all of them. NaNs
//! that arithmetic did not produce (loaded from memory, constants,
//! parameters, reinterpreted integers) keep their bits, exactly as with
//! Cranelift's pass.
//!
//! # The analysis
//!
//! Per function, a pass over the operators simulates the operand stack and
//! what each float local holds, through the function's blocks, branches and
//! loops (to a fixpoint). Each value carries its *origins*: the arithmetic
//! operators whose unchanged result it may be, and *opaque* if it may be
//! anything else that can be a NaN (a load, a parameter, a call's result, a
//! global, a NaN constant, a sign changed by `fneg`, `fabs` or `copysign`).
//!
//! A consumer either absorbs its operands' bits (arithmetic, whose own
//! result is handled in turn, comparisons, truncations to integers, `drop`),
//! passes them on (`select`, `local.set`, `local.tee`, `local.get`), or may
//! observe them: everything else, including every control instruction and
//! call (for the values on the stack), `fneg`, `fabs` and `copysign`, and
//! every operator whose stack effect the pass does not model.
//!
//! An observed value is canonicalised where it is observed when it is on
//! top of the stack there (a store's value, a reinterpretation's operand,
//! `copysign`'s sign) and none of its origins is opaque: whatever NaN it is
//! came from arithmetic, unchanged, so one check there does what a check
//! after each of those operators would. Otherwise each arithmetic operator
//! among its origins canonicalises its result, as Cranelift would.
//!
//! Refused (the component then runs under Cranelift's canonicalisation,
//! which computes the same): vector float operators (`f32x4.*`, `f64x2.*`,
//! relaxed SIMD), whose lanes the rewrite does not canonicalise
//! ([`NanRewriteError::VectorFloat`]); control flow it does not model
//! (exceptions, typed function references); and a component that would
//! take the analysis more than its budget, in proportion to its size
//! ([`NanRewriteError::Budget`]): origin sets are capped
//! (`MAX_ORIGINS`) and each pass's work is counted, so a component built
//! to make the analysis slow or large costs a bounded amount before it
//! falls back.
//!
//! The rewrite is part of the engine fingerprint
//! (`nan-canonicalization=observable/v1`): a change to it that moves a
//! single check needs a new version.

use wasm_encoder::reencode::{self, Reencode, ReencodeComponent};
use wasmparser::{Operator, Parser, Validator, WasmFeatures};

/// The analysis's budget, in units of work (an operator visited, an origin
/// copied or compared, about 8 bytes held): this many per byte of
/// component, plus a base, up to a cap. The Rust example tools need under
/// a quarter of theirs (a test checks it). A large interpreter may need
/// more than the cap, and runs under the engine's canonicalisation, as
/// does a component built to make the analysis slow: `cargo bench -p
/// errand --bench interpreted` shows which of the Python and JavaScript
/// tools do.
const BUDGET_PER_BYTE: u64 = 32;
const BUDGET_BASE: u64 = 1 << 22;
const BUDGET_MAX: u64 = 1 << 26;

/// Most locals a function may have, as wasmparser validates it.
const MAX_LOCALS: u64 = 50_000;

/// The version of which components the rewrite refuses: a change that may
/// let a component through that it refused before, or refuse one it took
/// (a cheaper analysis, exceptions or vector floats supported, a new
/// wasmparser or wasm-encoder), needs a new one. Part of the name of the
/// disk cache's notes of a fallback, with [`verdicts`].
const VERDICTS: u32 = 1;

/// What decides, beside the engine's settings (the rewrite's version,
/// wasmtime's, the architecture), whether a component is rewritten or
/// falls back: [`VERDICTS`] and the analysis's bounds. Part of the name of
/// the disk cache's note of a fallback, so that an older verdict is not
/// taken for a newer one's.
pub(crate) fn verdicts() -> String {
    format!(
        "verdicts={VERDICTS};budget={BUDGET_PER_BYTE}/{BUDGET_BASE}/{BUDGET_MAX};\
         passes={MAX_PASSES};origins={MAX_ORIGINS};locals={MAX_LOCALS}"
    )
}

/// Whether a value type is a scalar float.
fn is_float(ty: wasmparser::ValType) -> bool {
    matches!(ty, wasmparser::ValType::F32 | wasmparser::ValType::F64)
}

/// The canonical `f32` NaN, as Cranelift's canonicalisation writes it.
const CANONICAL_F32: u32 = 0x7fc0_0000;
/// The canonical `f64` NaN, as Cranelift's canonicalisation writes it.
const CANONICAL_F64: u64 = 0x7ff8_0000_0000_0000;

/// Why a component was not rewritten. Each leaves it to run under
/// Cranelift's canonicalisation, which computes the same outputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NanRewriteError {
    /// The component does not validate; wasmtime reports why when it is
    /// compiled as it is.
    #[error("the component does not validate: {0}")]
    Invalid(String),
    /// It uses vector float arithmetic, whose lanes the rewrite does not
    /// canonicalise.
    #[error(
        "the component uses vector float arithmetic ({0}), which is canonicalised by the engine"
    )]
    VectorFloat(String),
    /// The analysis would have taken more than its budget (this many
    /// units, in proportion to the component's size): a component built
    /// to make it slow, or a large interpreter (the JavaScript engine
    /// componentize-js builds in).
    #[error("the analysis would take more than {0} units of work")]
    Budget(u64),
    /// The re-encoder refused a construct it cannot rewrite.
    #[error("cannot rewrite the component: {0}")]
    Reencode(String),
    /// wasmtime refused the rewritten component (one local too many, say,
    /// or a resource this machine lacked as it compiled it).
    #[error("the rewritten component does not compile: {0}")]
    Compile(String),
}

impl NanRewriteError {
    /// Whether the refusal is the analysis's own, decided by the
    /// component's bytes alone: the disk cache notes only those, not a
    /// compile that may have failed for want of memory.
    pub fn is_the_analysis_verdict(&self) -> bool {
        !matches!(self, NanRewriteError::Compile(_))
    }
}

/// A component rewritten by [`canonicalise_where_observable`].
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The rewritten component.
    pub bytes: Vec<u8>,
    /// Units of work the analysis took (see [`NanRewriteError::Budget`]).
    pub work: u64,
    /// Float arithmetic operators, in all its core modules.
    pub arithmetic: u64,
    /// Those whose result is canonicalised.
    pub after_arithmetic: u64,
    /// Places where a value is canonicalised as it is observed (a store,
    /// a reinterpretation, `copysign`'s sign), instead of at each
    /// arithmetic operator it may come from.
    pub at_observation: u64,
}

/// Rewrites `component` so that it canonicalises exactly the NaNs whose bits
/// can be observed (see the module docs). Deterministic: the same input
/// always gives the same bytes.
pub fn canonicalise_where_observable(component: &[u8]) -> Result<Rewritten, NanRewriteError> {
    Validator::new_with_features(WasmFeatures::default())
        .validate_all(component)
        .map_err(|e| NanRewriteError::Invalid(e.to_string()))?;
    let mut pass = Pass {
        budget: (component.len() as u64)
            .saturating_mul(BUDGET_PER_BYTE)
            .saturating_add(BUDGET_BASE)
            .min(BUDGET_MAX),
        ..Pass::default()
    };
    let mut out = wasm_encoder::Component::new();
    let result = pass.parse_component(&mut out, Parser::new(0), component);
    match result {
        Ok(()) => Ok(Rewritten {
            bytes: out.finish(),
            work: pass.work,
            arithmetic: pass.arithmetic,
            after_arithmetic: pass.after_arithmetic,
            at_observation: pass.at_observation,
        }),
        Err(reencode::Error::UserError(e)) => Err(e),
        Err(e) => Err(NanRewriteError::Reencode(e.to_string())),
    }
}

/// The re-encoder: state of the core module being rewritten.
#[derive(Default)]
struct Pass {
    /// Which parameters are floats, for each type of the current module
    /// (`None`: not a function type).
    type_params: Vec<Option<Vec<bool>>>,
    /// Type index of each function the current module defines.
    func_types: Vec<u32>,
    /// Which defined function the next body belongs to.
    next_body: usize,
    /// Units of analysis work done so far, and the most allowed.
    work: u64,
    budget: u64,
    arithmetic: u64,
    after_arithmetic: u64,
    at_observation: u64,
}

type Error = reencode::Error<NanRewriteError>;

impl Reencode for Pass {
    type Error = NanRewriteError;

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), Error> {
        self.type_params.clear();
        for group in section.clone() {
            for sub in group?.types() {
                self.type_params.push(match &sub.composite_type.inner {
                    wasmparser::CompositeInnerType::Func(f) => {
                        Some(f.params().iter().map(|t| is_float(*t)).collect())
                    }
                    _ => None,
                });
            }
        }
        reencode::utils::parse_type_section(self, types, section)
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), Error> {
        self.func_types.clear();
        self.next_body = 0;
        for ty in section.clone() {
            self.func_types.push(ty?);
        }
        reencode::utils::parse_function_section(self, functions, section)
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), Error> {
        let params = self
            .func_types
            .get(self.next_body)
            .and_then(|&ty| self.type_params.get(ty as usize).cloned().flatten())
            .ok_or_else(|| {
                reencode::Error::UserError(NanRewriteError::Reencode(format!(
                    "function body {} has no function type",
                    self.next_body
                )))
            })?;
        self.next_body += 1;
        let mut locals = Vec::new();
        // Whether each local is a float, parameters first.
        let nparams = params.len();
        let mut floats = params;
        for pair in body.get_locals_reader()? {
            let (n, ty) = pair?;
            if floats.len() as u64 + u64::from(n) > MAX_LOCALS {
                return Err(reencode::Error::UserError(NanRewriteError::Reencode(
                    "too many locals".into(),
                )));
            }
            floats.extend(std::iter::repeat_n(is_float(ty), n as usize));
            locals.push((n, self.val_type(ty)?));
        }
        let count = floats.len() as u64;
        let mut ops = Vec::new();
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            ops.push(reader.read()?);
        }
        let actions = analyse(&ops, nparams, &floats, &mut self.work, self.budget)
            .map_err(reencode::Error::UserError)?;
        let needs = |w: Width| {
            actions
                .iter()
                .any(|a| matches!(a, Action::After(x) | Action::Before(x) if *x == w))
        };
        // One scratch local per float width this function needs.
        let (f32_tmp, f64_tmp) = (count, count + u64::from(needs(Width::F32)));
        let as_index = |i: u64| {
            u32::try_from(i).map_err(|_| {
                reencode::Error::UserError(NanRewriteError::Reencode("too many locals".into()))
            })
        };
        let (f32_tmp, f64_tmp) = (as_index(f32_tmp)?, as_index(f64_tmp)?);
        if needs(Width::F32) {
            locals.push((1, wasm_encoder::ValType::F32));
        }
        if needs(Width::F64) {
            locals.push((1, wasm_encoder::ValType::F64));
        }
        let mut f = wasm_encoder::Function::new(locals);
        for (op, &action) in ops.into_iter().zip(&actions) {
            if arithmetic(&op).is_some() {
                self.arithmetic += 1;
            }
            if let Action::Before(w) = action {
                self.at_observation += 1;
                canonicalise_top(&mut f, w, f32_tmp, f64_tmp);
            }
            f.instruction(&self.instruction(op)?);
            if let Action::After(w) = action {
                self.after_arithmetic += 1;
                canonicalise_top(&mut f, w, f32_tmp, f64_tmp);
            }
        }
        code.function(&f);
        Ok(())
    }
}

impl ReencodeComponent for Pass {}

/// Replaces the float on top of the stack, if it is a NaN, with the
/// canonical NaN: `select(x, canonical, x == x)`.
fn canonicalise_top(f: &mut wasm_encoder::Function, w: Width, f32_tmp: u32, f64_tmp: u32) {
    use wasm_encoder::{Ieee32, Ieee64, Instruction as I};
    match w {
        Width::F32 => {
            f.instruction(&I::LocalTee(f32_tmp))
                .instruction(&I::F32Const(Ieee32::new(CANONICAL_F32)))
                .instruction(&I::LocalGet(f32_tmp))
                .instruction(&I::LocalGet(f32_tmp))
                .instruction(&I::F32Eq)
                .instruction(&I::Select);
        }
        Width::F64 => {
            f.instruction(&I::LocalTee(f64_tmp))
                .instruction(&I::F64Const(Ieee64::new(CANONICAL_F64)))
                .instruction(&I::LocalGet(f64_tmp))
                .instruction(&I::LocalGet(f64_tmp))
                .instruction(&I::F64Eq)
                .instruction(&I::Select);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    F32,
    F64,
}

/// The width of the result of a float arithmetic operator: one whose NaN
/// result has bits the CPU chooses, the set Cranelift canonicalises.
fn arithmetic(op: &Operator<'_>) -> Option<Width> {
    use Operator as O;
    match op {
        O::F32Add
        | O::F32Sub
        | O::F32Mul
        | O::F32Div
        | O::F32Min
        | O::F32Max
        | O::F32Sqrt
        | O::F32Ceil
        | O::F32Floor
        | O::F32Trunc
        | O::F32Nearest
        | O::F32DemoteF64 => Some(Width::F32),
        O::F64Add
        | O::F64Sub
        | O::F64Mul
        | O::F64Div
        | O::F64Min
        | O::F64Max
        | O::F64Sqrt
        | O::F64Ceil
        | O::F64Floor
        | O::F64Trunc
        | O::F64Nearest
        | O::F64PromoteF32 => Some(Width::F64),
        _ => None,
    }
}

/// How an operator treats the float operands it pops.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// Its result does not depend on the operands' NaN bits: arithmetic
    /// (whose own result is handled in turn), comparisons, truncations to
    /// integers, `drop`. Pops `.0`, pushes `.1` fresh values.
    Absorbs(u32, u32),
    /// Returns its one operand with at most the sign changed: `fneg`,
    /// `fabs`. The operand is observed (the sign of a canonical NaN is no
    /// longer the canonical one's) and the result is opaque.
    ChangesSign,
    /// `copysign`: both operands are observed (the sign operand's sign shows
    /// in a result that need not be NaN) and the result is opaque.
    CopySign,
    /// `select`: one of two operands passes on; the condition is an integer.
    Select,
    /// A float constant; `true` if it is a NaN.
    Const(bool),
    /// `local.get`.
    Get(u32),
    /// `local.set`, or `local.tee` (`true`).
    Set(u32, bool),
    /// Pops `.0` values and may observe them, pushes `.1` fresh values.
    Observes(u32, u32),
    /// A stack effect the pass does not model (exceptions, typed function
    /// references, GC): the component is not rewritten.
    Barrier,
}

/// The control flow `analyse` follows itself.
fn is_control(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Block { .. }
            | O::Loop { .. }
            | O::If { .. }
            | O::Else
            | O::End
            | O::Br { .. }
            | O::BrIf { .. }
            | O::BrTable { .. }
            | O::Return
            | O::Unreachable
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::Call { .. }
            | O::CallIndirect { .. }
    )
}

fn classify(op: &Operator<'_>) -> Result<Use, NanRewriteError> {
    use Operator as O;
    if arithmetic(op).is_some() {
        return Ok(match op {
            O::F32Add
            | O::F32Sub
            | O::F32Mul
            | O::F32Div
            | O::F32Min
            | O::F32Max
            | O::F64Add
            | O::F64Sub
            | O::F64Mul
            | O::F64Div
            | O::F64Min
            | O::F64Max => Use::Absorbs(2, 1),
            _ => Use::Absorbs(1, 1),
        });
    }
    Ok(match op {
        O::F32Eq
        | O::F32Ne
        | O::F32Lt
        | O::F32Gt
        | O::F32Le
        | O::F32Ge
        | O::F64Eq
        | O::F64Ne
        | O::F64Lt
        | O::F64Gt
        | O::F64Le
        | O::F64Ge => Use::Absorbs(2, 1),
        O::I32TruncF32S
        | O::I32TruncF32U
        | O::I32TruncF64S
        | O::I32TruncF64U
        | O::I64TruncF32S
        | O::I64TruncF32U
        | O::I64TruncF64S
        | O::I64TruncF64U
        | O::I32TruncSatF32S
        | O::I32TruncSatF32U
        | O::I32TruncSatF64S
        | O::I32TruncSatF64U
        | O::I64TruncSatF32S
        | O::I64TruncSatF32U
        | O::I64TruncSatF64S
        | O::I64TruncSatF64U => Use::Absorbs(1, 1),
        O::Drop => Use::Absorbs(1, 0),
        O::F32Neg | O::F32Abs | O::F64Neg | O::F64Abs => Use::ChangesSign,
        O::F32Copysign | O::F64Copysign => Use::CopySign,
        O::Select => Use::Select,
        O::TypedSelect { ty } if !matches!(ty, wasmparser::ValType::V128) => Use::Select,
        O::LocalGet { local_index } => Use::Get(*local_index),
        O::LocalSet { local_index } => Use::Set(*local_index, false),
        O::LocalTee { local_index } => Use::Set(*local_index, true),
        O::F32Const { value } => Use::Const(f32::from_bits(value.bits()).is_nan()),
        O::F64Const { value } => Use::Const(f64::from_bits(value.bits()).is_nan()),
        // Control flow is `analyse`'s; exceptions, and any other operator
        // whose stack effect depends on the module (typed references, GC),
        // are not rewritten.
        O::TryTable { .. }
        | O::Try { .. }
        | O::Catch { .. }
        | O::CatchAll
        | O::Delegate { .. }
        | O::Throw { .. }
        | O::Rethrow { .. }
        | O::ThrowRef => Use::Barrier,
        _ => {
            let name = format!("{op:?}");
            if name.starts_with("F32x4") || name.starts_with("F64x2") || name.starts_with("F16") {
                return Err(NanRewriteError::VectorFloat(name));
            }
            match op.operator_arity(&NoModule) {
                Some((pops, pushes)) => Use::Observes(pops, pushes),
                None => Use::Barrier,
            }
        }
    })
}

/// Arity of operators whose stack effect depends on the module: unknown,
/// so they are barriers.
struct NoModule;

impl wasmparser::ModuleArity for NoModule {
    fn sub_type_at(&self, _: u32) -> Option<&wasmparser::SubType> {
        None
    }
    fn tag_type_arity(&self, _: u32) -> Option<(u32, u32)> {
        None
    }
    fn type_index_of_function(&self, _: u32) -> Option<u32> {
        None
    }
    fn func_type_of_cont_type(&self, _: &wasmparser::ContType) -> Option<&wasmparser::FuncType> {
        None
    }
    fn sub_type_of_ref_type(&self, _: &wasmparser::RefType) -> Option<&wasmparser::SubType> {
        None
    }
    fn control_stack_height(&self) -> u32 {
        0
    }
    fn label_block(&self, _: u32) -> Option<(wasmparser::BlockType, wasmparser::FrameKind)> {
        None
    }
}

/// The arithmetic operators (by index) a value may be the unchanged result
/// of, sorted, and [`OPAQUE`] if it may be anything else.
type Origins = Vec<u32>;

/// The origin of any other value that may be a NaN: a load, a parameter, a
/// call's result, a global, a reinterpreted integer, a NaN constant, a
/// value whose sign `fneg`, `fabs` or `copysign` changed. Its bits are the
/// program's own and must reach wherever it goes unchanged.
const OPAQUE: u32 = u32::MAX;

/// Most passes over one function before its loops' states settle; a
/// function that needs more runs under the engine's canonicalisation.
const MAX_PASSES: usize = 32;

/// Where one function body canonicalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Action {
    /// Nowhere at this operator.
    #[default]
    None,
    /// The result of this arithmetic operator.
    After(Width),
    /// The operand on top of the stack, before this operator observes it.
    Before(Width),
}

/// An operator that may observe a value.
struct Sink {
    /// Its index.
    at: u32,
    /// The value's origins.
    value: Origins,
    /// The value's width, when it is on top of the stack as the operator
    /// runs (a store's value, a reinterpretation's operand, `copysign`'s
    /// sign), so it can be canonicalised right there.
    top: Option<Width>,
}

/// The width of the value an operator observes on top of the stack.
fn observes_top(op: &Operator<'_>) -> Option<Width> {
    use Operator as O;
    match op {
        O::F32Store { .. } | O::I32ReinterpretF32 | O::F32Copysign => Some(Width::F32),
        O::F64Store { .. } | O::I64ReinterpretF64 | O::F64Copysign => Some(Width::F64),
        _ => None,
    }
}

/// What each float local may hold at one point; `None` where control
/// cannot reach.
type State = Option<Vec<Origins>>;

/// Most origins a value may carry. A larger set is saturated: each
/// arithmetic operator in it is canonicalised, whatever observes it, and the
/// set keeps only [`OPAQUE`] (if it had it). Exact either way (a
/// canonicalised result needs no later check); this bounds the analysis.
const MAX_ORIGINS: usize = 32;

/// What the analysis of one function does, counted: each operator visited,
/// each origin copied or compared, each local's state cloned, in units of
/// about 8 bytes held or one step taken. Bounded by [`Pass::budget`]:
/// every charge is checked before the work it pays for.
struct Work {
    /// Units done so far, in the whole component.
    done: u64,
    /// The most allowed.
    budget: u64,
    /// Arithmetic operators canonicalised whatever observes them (saturated
    /// sets), by index, kept across passes.
    forced: Vec<bool>,
}

impl Work {
    /// Pays for `n` units, or fails when that would pass the budget.
    fn charge(&mut self, n: u64) -> Result<(), NanRewriteError> {
        self.done = self.done.saturating_add(n);
        if self.done > self.budget {
            return Err(NanRewriteError::Budget(self.budget));
        }
        Ok(())
    }

    /// Adds `from` to `into`; whether `into` grew.
    fn union(&mut self, into: &mut Origins, from: &[u32]) -> Result<bool, NanRewriteError> {
        self.charge(from.len() as u64 + 1)?;
        if from.iter().all(|o| into.binary_search(o).is_ok()) {
            return Ok(false);
        }
        self.charge(from.len() as u64 + 4)?;
        into.extend_from_slice(from);
        into.sort_unstable();
        into.dedup();
        self.saturate(into);
        Ok(true)
    }

    /// Saturates `set` if it is over [`MAX_ORIGINS`].
    fn saturate(&mut self, set: &mut Origins) {
        if set.len() <= MAX_ORIGINS {
            return;
        }
        for &o in set.iter() {
            if let Some(f) = self.forced.get_mut(o as usize) {
                *f = true;
            }
        }
        let opaque = set.last() == Some(&OPAQUE);
        set.clear();
        set.shrink_to_fit();
        if opaque {
            set.push(OPAQUE);
        }
    }

    /// A copy of `v`, counted.
    fn copy(&mut self, v: &[u32]) -> Result<Origins, NanRewriteError> {
        self.charge(v.len() as u64 + 4)?;
        Ok(v.to_vec())
    }

    /// A copy of `state`, counted.
    fn copy_state(&mut self, state: &State) -> Result<State, NanRewriteError> {
        if let Some(s) = state {
            self.charge(s.iter().map(|v| v.len() as u64 + 4).sum::<u64>() + 4)?;
        }
        Ok(state.clone())
    }

    /// Joins `from` into `into`; whether `into` changed.
    fn join(&mut self, into: &mut State, from: &State) -> Result<bool, NanRewriteError> {
        match (into.as_mut(), from) {
            (_, None) => Ok(false),
            (None, Some(_)) => {
                *into = self.copy_state(from)?;
                Ok(true)
            }
            (Some(a), Some(b)) => {
                let mut changed = false;
                for (a, b) in a.iter_mut().zip(b) {
                    changed |= self.union(a, b)?;
                }
                Ok(changed)
            }
        }
    }
}

/// One enclosing block, loop or `if`.
struct Frame {
    /// The `loop` operator's index, for a loop: branches go to its head.
    head: Option<usize>,
    /// For an `if`, the state it was entered with (for its `else`).
    entry: State,
    /// Whether an `if` has had its `else`.
    has_else: bool,
    /// The states branches to its end carry.
    exit: State,
}

/// Where a branch `depth` labels out goes: a loop's head (its back-edge
/// state grows: whether it did) or a block's end.
fn branch(
    depth: u32,
    state: &State,
    frames: &mut [Frame],
    back: &mut std::collections::HashMap<usize, State>,
    work: &mut Work,
) -> Result<bool, NanRewriteError> {
    let k = frames
        .len()
        .checked_sub(1 + depth as usize)
        .ok_or_else(|| NanRewriteError::Reencode("branch out of range".into()))?;
    let f = &mut frames[k];
    Ok(match f.head {
        Some(h) => work.join(back.entry(h).or_default(), state)?,
        None => {
            work.join(&mut f.exit, state)?;
            false
        }
    })
}

/// Where one function body, whose first `params` locals are parameters and
/// whose locals are floats where `floats` says so, canonicalises. `done`
/// counts the component's analysis work so far, which may not pass
/// `budget`.
///
/// A value that may be observed is canonicalised where it is observed when
/// it is on top of the stack there and every NaN it can be is an
/// arithmetic result that reached it unchanged (once, however many
/// operations made it); otherwise at each arithmetic operator it may come
/// from, as the engine would. Locals are tracked through the function's
/// control flow (a `local.set` replaces what a local held), to a fixpoint
/// over its loops.
fn analyse(
    ops: &[Operator<'_>],
    params: usize,
    floats: &[bool],
    done: &mut u64,
    budget: u64,
) -> Result<Vec<Action>, NanRewriteError> {
    if u32::try_from(ops.len()).is_err() {
        return Err(NanRewriteError::Reencode("function too large".into()));
    }
    let mut work = Work {
        done: *done,
        budget,
        forced: Vec::new(),
    };
    // The operators held, the locals' tables and the marks.
    work.charge(ops.len() as u64 * 8 + floats.len() as u64 / 4 + 1)?;
    work.forced = vec![false; ops.len()];
    // How each operator uses its operands; `None` for control flow.
    let uses = ops
        .iter()
        .map(|op| {
            if is_control(op) {
                Ok(None)
            } else {
                classify(op).map(Some)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Dense slots for the float locals.
    let mut slots = Vec::with_capacity(floats.len());
    let mut n = 0usize;
    for &f in floats {
        slots.push(f.then(|| {
            n += 1;
            n - 1
        }));
    }
    let initial: State = Some(
        floats
            .iter()
            .enumerate()
            .filter(|(_, f)| **f)
            .map(|(l, _)| if l < params { vec![OPAQUE] } else { Vec::new() })
            .collect(),
    );
    // What back edges carry to each loop's head, grown pass by pass.
    let mut back: std::collections::HashMap<usize, State> = std::collections::HashMap::new();

    for _ in 0..MAX_PASSES {
        let mut changed = false;
        let mut sinks: Vec<Sink> = Vec::new();
        let mut state = work.copy_state(&initial)?;
        let mut frames = vec![Frame {
            head: None,
            entry: None,
            has_else: false,
            exit: None,
        }];
        let mut stack: Vec<Origins> = Vec::new();
        // Below what the simulation has seen: a block's or call's values.
        let pop = |stack: &mut Vec<Origins>| stack.pop().unwrap_or_else(|| vec![OPAQUE]);
        let sink = |sinks: &mut Vec<Sink>,
                    work: &mut Work,
                    at: u32,
                    value: Origins,
                    top|
         -> Result<(), NanRewriteError> {
            work.charge(value.len() as u64 + 4)?;
            sinks.push(Sink { at, value, top });
            Ok(())
        };
        let flush = |stack: &mut Vec<Origins>,
                     sinks: &mut Vec<Sink>,
                     work: &mut Work,
                     at: u32|
         -> Result<(), NanRewriteError> {
            for value in stack.drain(..) {
                sink(sinks, work, at, value, None)?;
            }
            Ok(())
        };

        for (i, op) in ops.iter().enumerate() {
            use Operator as O;
            work.charge(1)?;
            let at = i as u32;
            // Control flow first: where locals' states go.
            match op {
                O::Block { .. } => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    frames.push(Frame {
                        head: None,
                        entry: None,
                        has_else: false,
                        exit: None,
                    });
                    continue;
                }
                O::Loop { .. } => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    if let Some(b) = back.get(&i) {
                        work.join(&mut state, b)?;
                    }
                    frames.push(Frame {
                        head: Some(i),
                        entry: None,
                        has_else: false,
                        exit: None,
                    });
                    continue;
                }
                O::If { .. } => {
                    let cond = pop(&mut stack);
                    sink(&mut sinks, &mut work, at, cond, None)?;
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    frames.push(Frame {
                        head: None,
                        entry: work.copy_state(&state)?,
                        has_else: false,
                        exit: None,
                    });
                    continue;
                }
                O::Else => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    let f = frames
                        .last_mut()
                        .ok_or_else(|| NanRewriteError::Reencode("else outside if".into()))?;
                    work.join(&mut f.exit, &state)?;
                    state = f.entry.take();
                    f.has_else = true;
                    continue;
                }
                O::End => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    let f = frames
                        .pop()
                        .ok_or_else(|| NanRewriteError::Reencode("unbalanced end".into()))?;
                    if f.head.is_none() {
                        work.join(&mut state, &f.exit)?;
                        if !f.has_else {
                            // An `if` without `else` (a block's entry is
                            // `None`, so this adds nothing for it).
                            work.join(&mut state, &f.entry)?;
                        }
                    }
                    continue;
                }
                O::Br { relative_depth } => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    changed |= branch(*relative_depth, &state, &mut frames, &mut back, &mut work)?;
                    state = None;
                    continue;
                }
                O::BrIf { relative_depth } => {
                    let cond = pop(&mut stack);
                    sink(&mut sinks, &mut work, at, cond, None)?;
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    changed |= branch(*relative_depth, &state, &mut frames, &mut back, &mut work)?;
                    continue;
                }
                O::BrTable { targets } => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    // Each label once: a second join adds nothing.
                    let mut labels = vec![targets.default()];
                    for t in targets.targets() {
                        labels.push(t.map_err(|e| NanRewriteError::Reencode(e.to_string()))?);
                    }
                    work.charge(labels.len() as u64)?;
                    labels.sort_unstable();
                    labels.dedup();
                    for t in labels {
                        changed |= branch(t, &state, &mut frames, &mut back, &mut work)?;
                    }
                    state = None;
                    continue;
                }
                O::Return
                | O::Unreachable
                | O::ReturnCall { .. }
                | O::ReturnCallIndirect { .. } => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    state = None;
                    continue;
                }
                O::Call { .. } | O::CallIndirect { .. } => {
                    flush(&mut stack, &mut sinks, &mut work, at)?;
                    continue;
                }
                _ => {}
            }
            let local = |l: u32| slots.get(l as usize).copied().flatten();
            let Some(use_) = uses[i] else {
                return Err(NanRewriteError::Reencode(format!(
                    "unexpected control flow: {op:?}"
                )));
            };
            match use_ {
                Use::Absorbs(pops, pushes) => {
                    for _ in 0..pops {
                        pop(&mut stack);
                    }
                    for _ in 0..pushes {
                        stack.push(if arithmetic(op).is_some() {
                            vec![at]
                        } else {
                            Vec::new()
                        });
                    }
                }
                Use::ChangesSign => {
                    // The sign may change: a canonical NaN is no longer one.
                    let value = pop(&mut stack);
                    sink(&mut sinks, &mut work, at, value, None)?;
                    stack.push(vec![OPAQUE]);
                }
                Use::CopySign => {
                    let sign = pop(&mut stack);
                    sink(&mut sinks, &mut work, at, sign, observes_top(op))?;
                    let value = pop(&mut stack);
                    sink(&mut sinks, &mut work, at, value, None)?;
                    stack.push(vec![OPAQUE]);
                }
                Use::Select => {
                    pop(&mut stack);
                    let mut b = pop(&mut stack);
                    let a = pop(&mut stack);
                    work.union(&mut b, &a)?;
                    stack.push(b);
                }
                Use::Const(nan) => stack.push(if nan { vec![OPAQUE] } else { Vec::new() }),
                Use::Get(l) => {
                    let v = match (local(l), &state) {
                        (Some(s), Some(st)) => work.copy(&st[s])?,
                        // An integer local, or code control cannot reach.
                        _ => Vec::new(),
                    };
                    stack.push(v);
                }
                Use::Set(l, tee) => {
                    let v = pop(&mut stack);
                    let kept = if tee { Some(work.copy(&v)?) } else { None };
                    if let (Some(s), Some(st)) = (local(l), state.as_mut()) {
                        st[s] = v;
                    }
                    if let Some(k) = kept {
                        stack.push(k);
                    }
                }
                Use::Observes(pops, pushes) => {
                    let top = observes_top(op);
                    for k in 0..pops {
                        let value = pop(&mut stack);
                        sink(
                            &mut sinks,
                            &mut work,
                            at,
                            value,
                            if k == 0 { top } else { None },
                        )?;
                    }
                    for _ in 0..pushes {
                        stack.push(vec![OPAQUE]);
                    }
                }
                Use::Barrier => {
                    return Err(NanRewriteError::Reencode(format!(
                        "unsupported control flow: {op:?}"
                    )));
                }
            }
        }
        if changed {
            continue;
        }
        let mut actions = vec![Action::None; ops.len()];
        for sink in sinks {
            match sink.top {
                Some(w) if !sink.value.contains(&OPAQUE) => {
                    if !sink.value.is_empty() {
                        actions[sink.at as usize] = Action::Before(w);
                    }
                }
                _ => {
                    for &o in sink.value.iter().filter(|&&o| o != OPAQUE) {
                        if let Some(w) = ops.get(o as usize).and_then(arithmetic) {
                            actions[o as usize] = Action::After(w);
                        }
                    }
                }
            }
        }
        for (o, _) in work.forced.iter().enumerate().filter(|(_, f)| **f) {
            if let Some(w) = arithmetic(&ops[o]) {
                actions[o] = Action::After(w);
            }
        }
        *done = work.done;
        return Ok(actions);
    }
    Err(NanRewriteError::Reencode(format!(
        "a function's loops did not settle in {MAX_PASSES} passes"
    )))
}
