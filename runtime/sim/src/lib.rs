//! A discrete-event simulator of an Errand network, driven by the same
//! discovery and trust code the live node runs.
//!
//! It reproduces the evaluation of the seed paper (Wang et al., 2026: workflow
//! success under Sybil index poisoning, discovery latency against network
//! size, control-plane overhead, the TTL trade-off under capability drift)
//! and goes beyond it: confidence intervals over independent runs, smarter
//! attackers, and networks of up to 1,000,000 peers.
//!
//! * [`model`]: the world (peers, registries, requesters, links, attacks,
//!   drift) and its event loop. Registries are `errand_core::discovery::Index`
//!   values; requesters order candidates, run canaries, check receipts and
//!   fall back with `errand_core::trust`; receipts are judged by
//!   `errand_core::request::Request::check_receipt`. Only the network, the
//!   executors' behaviour (including what they ran and what their receipts
//!   claim), the requester's own replay runs (which can fail) and the
//!   passage of time are modelled.
//! * [`scenario`]: the sweeps behind `errand sim`, which write CSV, SVG and
//!   Markdown, and the `paper` report.
//! * [`stats`]: confidence intervals, quantiles and knees.
//! * [`plot`]: SVG line charts.
//!
//! Time is virtual and every random choice comes from the seed, so a seed
//! and a configuration give the same output, byte for byte.
//!
//! # Examples
//!
//! One run of the paper's setting (100 peers, a two-step workflow) with a
//! fifth of the peers Sybils returning wrong output:
//!
//! ```
//! use errand_core::trust::{Policy, RiskPolicy, TierSet};
//! use errand_sim::model::{Params, simulate};
//!
//! let base = Params { sybil_fraction: 0.2, workflows: 100, ..Params::default() };
//! let optimistic = simulate(&Params { policy: Policy::Fixed(TierSet::NONE), ..base.clone() }, 7);
//! let tiered = simulate(&Params { policy: Policy::Risk(RiskPolicy::default()), ..base }, 7);
//! assert_eq!(optimistic.workflows, 100);
//! assert!(tiered.success_rate() > optimistic.success_rate());
//! ```
//!
//! A whole scenario, as `errand sim sybil-sweep --runs 2 --set workflows=40`
//! runs it:
//!
//! ```no_run
//! use errand_sim::scenario::{NoProgress, Options, Scenario, run};
//!
//! let opts = Options {
//!     runs: Some(2),
//!     sets: vec![("workflows".into(), "40".into())],
//!     ..Options::new("sim-results/sybil-sweep".into())
//! };
//! let outcome = run(Scenario::SybilSweep, &opts, &NoProgress)?;
//! println!("{}", outcome.summary);
//! # Ok::<(), errand_sim::scenario::SimError>(())
//! ```

pub mod model;
pub mod plot;
pub mod scenario;
pub mod stats;

pub use model::{Attack, Metrics, Params, Run, Selection, World, simulate};
pub use scenario::{Options, Scenario, SimError};
