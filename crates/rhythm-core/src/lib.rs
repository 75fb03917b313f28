//! The math of rhythm: SPEC sections 1-11, with no ML dependency.
//!
//! rhythm reads a transformer's attention to find where its reasoning plans
//! (*preplan* tokens, where the local attention distance WAAD drops) and
//! anchors (tokens that later tokens keep attending to, high FAI), following
//! Li et al. (2025). This crate turns attention into those signals and into a
//! per-token credit scale `gamma` for GRPO.
//!
//! A head comes in one of two forms. A *full map* ([`HeadMap`], `N x N`) is
//! simple and fine for short inputs. A *summary* ([`HeadSummary`]) is filled
//! row by row and holds `O(N)` numbers: every metric here is linear in the
//! map, so a group aggregate's WAAD or FAI is the mean of its heads'
//! per-head values, and a model can stream attention rows into summaries
//! without ever holding an `N x N` map. [`Rhythm::from_summaries`] and
//! [`Rhythm::from_maps`] compute the same [`Rhythm`] (the second uses the
//! literal formulas on explicit group means and is the reference the tests
//! hold the first against).
//!
//! Data flows one way: summaries → spans → [`HeadGroups`] → WAAD, FAI and
//! receiver FAI → [`Selections`] (Delta, preplan, anchors, dominated anchors
//! and intro tokens) → [`gamma`] for a [`Strategy`] → [`shaped_advantages`].
//! [`CouplingStats`] and [`chunk_ids`] serve analysis. Every knob lives in
//! [`Params`] with SPEC's defaults; ties, counts and medians follow SPEC to
//! the letter ([`ceil_q`], [`top_q`], [`median`]). The settings a user
//! gives (flags, TOML keys) are declared once in [`settings`] and turned into
//! [`Params`] over SPEC's RL or analysis preset.
//!
//! "SPEC section N" in these docs is section N of the project's specification,
//! `docs/spec.md` in the repository: the binding definitions this code follows.

pub mod chunks;
pub mod count;
pub mod coupling;
pub mod credit;
pub mod entropy;
pub mod error;
pub mod heads;
pub mod maps;
pub mod params;
pub mod rhythm;
pub mod select;
pub mod settings;
pub mod summary;

pub use chunks::{chunk_ids, chunk_onsets};
pub use count::{ceil_q, sample_layers};
pub use coupling::{peaks, CouplingStat, CouplingStats};
pub use credit::{gamma, group_advantages, shaped_advantages, CreditInputs, Strategy};
pub use entropy::{entropy, entropy_and_logprob};
pub use error::CoreError;
pub use heads::{receiver_heads, HeadGroups, HeadId, HeadSpan, SpanPool};
pub use maps::HeadMap;
pub use params::Params;
pub use rhythm::{delta, dominated_and_intro, Rhythm, Selections};
pub use select::{bottom_q, median, top_q};
pub use settings::{CreditSettings, Horizon, Layers, MetricSettings};
pub use summary::{kurtosis, HeadSummary, SummaryConfig};
