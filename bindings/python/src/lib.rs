//! `rhythm._rust`: the Python binding of `rhythm-core`.
//!
//! numpy arrays in and out. Every bad input raises `ValueError` (or
//! `TypeError` for an unknown keyword) with a one-line message; the core's
//! messages ([`rhythm_core::CoreError`]'s `Display`) pass through unchanged, so
//! they read as the `rhythm` CLI's. Nothing here panics on user input: shapes,
//! lengths, dtypes and finiteness are checked before the core sees the data.

use std::collections::BTreeMap;

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray3,
    PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rhythm_core as core;
use rhythm_core::{HeadGroups, HeadId, HeadMap, HeadSummary, SummaryConfig};

/// A `ValueError` carrying `e`'s one-line message.
fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `repr(obj)`, for messages; falls back to the type name.
fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable>".into())
}

/// A non-negative integer named `name`, or a `ValueError` naming it.
fn uint(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyValueError::new_err(format!(
            "{name} = {}, expected a non-negative integer",
            repr(obj)
        )));
    }
    obj.extract::<u64>().map_err(|_| {
        PyValueError::new_err(format!(
            "{name} = {}, expected a non-negative integer",
            repr(obj)
        ))
    })
}

/// A non-negative integer that fits `usize`.
fn usize_of(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    let v = uint(name, obj)?;
    usize::try_from(v).map_err(|_| {
        PyValueError::new_err(format!("{name} = {v}, expected at most {}", usize::MAX))
    })
}

/// A float named `name` (ints accepted).
fn float_of(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    if obj.is_instance_of::<pyo3::types::PyBool>() || obj.is_instance_of::<PyString>() {
        return Err(PyValueError::new_err(format!(
            "{name} = {}, expected a number",
            repr(obj)
        )));
    }
    obj.extract::<f64>()
        .map_err(|_| PyValueError::new_err(format!("{name} = {}, expected a number", repr(obj))))
}

/// `(lo, hi)` with `hi` `None` for "to the end" (`usize::MAX` in the core).
fn horizon_of(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<(usize, usize)> {
    let bad = || {
        PyValueError::new_err(format!(
            "{name} = {}, expected a pair (lo, hi) of non-negative integers, hi None for the end of the sequence",
            repr(obj)
        ))
    };
    if obj.is_instance_of::<PyString>() {
        return Err(bad());
    }
    let items: Vec<Bound<'_, PyAny>> = obj
        .try_iter()
        .map_err(|_| bad())?
        .collect::<PyResult<_>>()
        .map_err(|_| bad())?;
    if items.len() != 2 {
        return Err(bad());
    }
    let lo = usize_of(&format!("{name}[0]"), &items[0])?;
    let hi = if items[1].is_none() {
        usize::MAX
    } else {
        usize_of(&format!("{name}[1]"), &items[1])?
    };
    if lo > hi {
        return Err(PyValueError::new_err(format!(
            "{name} = ({lo}, {hi}), expected lo <= hi"
        )));
    }
    Ok((lo, hi))
}

/// The Python form of a horizon: `hi` is `None` for "to the end".
fn horizon_py(h: (usize, usize)) -> (usize, Option<usize>) {
    (h.0, if h.1 == usize::MAX { None } else { Some(h.1) })
}

// ---------------------------------------------------------------- Params

/// The keyword names `Params` accepts, in SPEC order.
const PARAM_NAMES: [&str; 12] = [
    "window",
    "horizon",
    "q",
    "head_ratio",
    "receiver_ratio",
    "proximity",
    "k",
    "gamma_amp",
    "alpha",
    "tau_waad",
    "tau_delta",
    "seed",
];

/// Every knob of the rhythm metrics, selections and credit strategies
/// (SPEC sections 3-8), validated.
#[pyclass(name = "Params", module = "rhythm._rust", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyParams {
    inner: core::Params,
}

impl PyParams {
    /// Sets field `key` of `p` from a Python value.
    fn apply(p: &mut core::Params, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        match key {
            "window" => p.window = usize_of(key, v)?,
            "horizon" => p.horizon = horizon_of(key, v)?,
            "q" => p.q = float_of(key, v)?,
            "head_ratio" => p.head_ratio = float_of(key, v)?,
            "receiver_ratio" => p.receiver_ratio = float_of(key, v)?,
            "proximity" => p.proximity = usize_of(key, v)?,
            "k" => p.k = usize_of(key, v)?,
            "gamma_amp" => p.gamma_amp = float_of(key, v)?,
            "alpha" => p.alpha = float_of(key, v)?,
            "tau_waad" => {
                p.tau_waad = if v.is_none() {
                    None
                } else {
                    Some(float_of(key, v)?)
                }
            }
            "tau_delta" => {
                p.tau_delta = if v.is_none() {
                    None
                } else {
                    Some(float_of(key, v)?)
                }
            }
            "seed" => p.seed = uint(key, v)?,
            other => {
                return Err(PyTypeError::new_err(format!(
                    "Params got an unexpected keyword argument '{other}', expected one of {}",
                    PARAM_NAMES.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// `base` with the keyword overrides applied, validated.
    fn build(base: core::Params, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut p = base;
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                let key: String = k.extract()?;
                Self::apply(&mut p, &key, &v)?;
            }
        }
        p.validate().map_err(value_err)?;
        Ok(PyParams { inner: p })
    }
}

#[pymethods]
impl PyParams {
    /// `Params(**fields)`: SPEC's RL defaults with the given fields replaced.
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::build(core::Params::rl(), kwargs)
    }

    /// SPEC's RL defaults: window 10, horizon (10, 50), q 0.4, head_ratio 0.3,
    /// receiver_ratio 0.1, proximity 4, k 3, gamma_amp 1.5, alpha 0.5.
    #[staticmethod]
    #[pyo3(signature = (**kwargs))]
    fn rl(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::build(core::Params::rl(), kwargs)
    }

    /// SPEC's analysis defaults: the RL defaults with FAI horizon (1, None),
    /// i.e. to the end of the sequence.
    #[staticmethod]
    #[pyo3(signature = (**kwargs))]
    fn analysis(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::build(core::Params::analysis(), kwargs)
    }

    /// A copy with the given fields replaced (validated).
    #[pyo3(signature = (**kwargs))]
    fn replace(&self, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::build(self.inner.clone(), kwargs)
    }

    /// The fields as a dict (`Params(**p.to_dict()) == p`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = &self.inner;
        let d = PyDict::new(py);
        d.set_item("window", p.window)?;
        d.set_item("horizon", horizon_py(p.horizon))?;
        d.set_item("q", p.q)?;
        d.set_item("head_ratio", p.head_ratio)?;
        d.set_item("receiver_ratio", p.receiver_ratio)?;
        d.set_item("proximity", p.proximity)?;
        d.set_item("k", p.k)?;
        d.set_item("gamma_amp", p.gamma_amp)?;
        d.set_item("alpha", p.alpha)?;
        d.set_item("tau_waad", p.tau_waad)?;
        d.set_item("tau_delta", p.tau_delta)?;
        d.set_item("seed", p.seed)?;
        Ok(d)
    }

    /// Pickle support: `Params(**self.to_dict())` rebuilds it.
    fn __getnewargs_ex__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        Ok((PyTuple::empty(py), self.to_dict(py)?))
    }

    /// WAAD window `W`.
    #[getter]
    fn window(&self) -> usize {
        self.inner.window
    }
    /// FAI horizon `(lo, hi)`; `hi` is `None` for "to the end".
    #[getter]
    fn horizon(&self) -> (usize, Option<usize>) {
        horizon_py(self.inner.horizon)
    }
    /// Fraction `q` of response tokens selected.
    #[getter]
    fn q(&self) -> f64 {
        self.inner.q
    }
    /// Head ratio `rho` of the local and global groups.
    #[getter]
    fn head_ratio(&self) -> f64 {
        self.inner.head_ratio
    }
    /// Fraction of candidate heads that are receiver heads.
    #[getter]
    fn receiver_ratio(&self) -> f64 {
        self.inner.receiver_ratio
    }
    /// Receiver-head proximity `p`.
    #[getter]
    fn proximity(&self) -> usize {
        self.inner.proximity
    }
    /// Neighbourhood `k` of locally dominated anchors.
    #[getter]
    fn k(&self) -> usize {
        self.inner.k
    }
    /// `gamma_amp`: boosted tokens get up to this multiple of the advantage.
    #[getter]
    fn gamma_amp(&self) -> f64 {
        self.inner.gamma_amp
    }
    /// `alpha` of the coupled strategy.
    #[getter]
    fn alpha(&self) -> f64 {
        self.inner.alpha
    }
    /// `tau_waad`; `None` = median of WAAD over the response.
    #[getter]
    fn tau_waad(&self) -> Option<f64> {
        self.inner.tau_waad
    }
    /// `tau_delta`; `None` = median of Delta over the response.
    #[getter]
    fn tau_delta(&self) -> Option<f64> {
        self.inner.tau_delta
    }
    /// Seed of the `random` strategy.
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }

    fn __repr__(&self) -> String {
        let p = &self.inner;
        let hi = match horizon_py(p.horizon).1 {
            Some(h) => h.to_string(),
            None => "None".into(),
        };
        let opt = |v: Option<f64>| v.map_or("None".to_string(), |x| format!("{x:?}"));
        format!(
            "Params(window={}, horizon=({}, {hi}), q={:?}, head_ratio={:?}, receiver_ratio={:?}, proximity={}, k={}, gamma_amp={:?}, alpha={:?}, tau_waad={}, tau_delta={}, seed={})",
            p.window,
            p.horizon.0,
            p.q,
            p.head_ratio,
            p.receiver_ratio,
            p.proximity,
            p.k,
            p.gamma_amp,
            p.alpha,
            opt(p.tau_waad),
            opt(p.tau_delta),
            p.seed
        )
    }
}

/// `params` as core parameters; `None` gives `default`.
fn params_or(params: Option<&Bound<'_, PyAny>>, default: core::Params) -> PyResult<core::Params> {
    match params {
        None => Ok(default),
        Some(p) if p.is_none() => Ok(default),
        Some(p) => match p.cast::<PyParams>() {
            Ok(pp) => Ok(pp.get().inner.clone()),
            Err(_) => match p.cast::<PyDict>() {
                Ok(d) => Ok(PyParams::build(core::Params::rl(), Some(d))?.inner),
                Err(_) => Err(PyValueError::new_err(format!(
                    "params = {}, expected a rhythm.Params (or a dict of its fields)",
                    repr(p)
                ))),
            },
        },
    }
}

// ---------------------------------------------------------------- Strategy

/// A credit strategy (SPEC section 8). `str(s)` is its CLI name; functions
/// also accept the names: none, local, global, coupled, random, entropy,
/// local-bottom, global-bottom, coupled-bottom.
#[pyclass(name = "Strategy", module = "rhythm._rust", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyStrategy {
    /// Plain GRPO: gamma = 1.
    #[pyo3(name = "NONE")]
    None,
    /// Boost the preplan tokens TopQ(Delta).
    #[pyo3(name = "LOCAL")]
    Local,
    /// Boost the anchors TopQ(FAI).
    #[pyo3(name = "GLOBAL")]
    Global,
    /// Coupled rhythm credit (eq. 18).
    #[pyo3(name = "COUPLED")]
    Coupled,
    /// Baseline: ceil(q n) seeded random positions.
    #[pyo3(name = "RANDOM")]
    Random,
    /// Baseline: the high-entropy tokens TopQ(H).
    #[pyo3(name = "ENTROPY")]
    Entropy,
    /// Ablation: local with BottomQ.
    #[pyo3(name = "LOCAL_BOTTOM")]
    LocalBottom,
    /// Ablation: global with BottomQ.
    #[pyo3(name = "GLOBAL_BOTTOM")]
    GlobalBottom,
    /// Ablation: coupled with BottomQ.
    #[pyo3(name = "COUPLED_BOTTOM")]
    CoupledBottom,
}

impl PyStrategy {
    fn to_core(self) -> core::Strategy {
        match self {
            PyStrategy::None => core::Strategy::None,
            PyStrategy::Local => core::Strategy::Local,
            PyStrategy::Global => core::Strategy::Global,
            PyStrategy::Coupled => core::Strategy::Coupled,
            PyStrategy::Random => core::Strategy::Random,
            PyStrategy::Entropy => core::Strategy::Entropy,
            PyStrategy::LocalBottom => core::Strategy::LocalBottom,
            PyStrategy::GlobalBottom => core::Strategy::GlobalBottom,
            PyStrategy::CoupledBottom => core::Strategy::CoupledBottom,
        }
    }

    fn from_core(s: core::Strategy) -> Self {
        match s {
            core::Strategy::None => PyStrategy::None,
            core::Strategy::Local => PyStrategy::Local,
            core::Strategy::Global => PyStrategy::Global,
            core::Strategy::Coupled => PyStrategy::Coupled,
            core::Strategy::Random => PyStrategy::Random,
            core::Strategy::Entropy => PyStrategy::Entropy,
            core::Strategy::LocalBottom => PyStrategy::LocalBottom,
            core::Strategy::GlobalBottom => PyStrategy::GlobalBottom,
            core::Strategy::CoupledBottom => PyStrategy::CoupledBottom,
        }
    }
}

#[pymethods]
impl PyStrategy {
    /// The strategy named `name` (its CLI name, e.g. "local-bottom").
    #[staticmethod]
    fn parse(name: &str) -> PyResult<Self> {
        name.parse::<core::Strategy>()
            .map(Self::from_core)
            .map_err(value_err)
    }

    /// The nine strategies in SPEC's table order.
    #[staticmethod]
    fn all() -> Vec<Self> {
        core::Strategy::ALL
            .iter()
            .map(|&s| Self::from_core(s))
            .collect()
    }

    /// Whether gamma needs the attention rhythm.
    #[getter]
    fn needs_attention(&self) -> bool {
        self.to_core().needs_attention()
    }

    /// Whether gamma needs per-token entropy.
    #[getter]
    fn needs_entropy(&self) -> bool {
        self.to_core().needs_entropy()
    }

    fn __str__(&self) -> &'static str {
        self.to_core().name()
    }

    /// Pickle support: `Strategy.parse(str(self))` rebuilds it.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (&'static str,))> {
        let parse = py.get_type::<PyStrategy>().getattr("parse")?;
        Ok((parse, (self.to_core().name(),)))
    }
}

/// A strategy from a `Strategy` or its name.
fn strategy_of(obj: &Bound<'_, PyAny>) -> PyResult<core::Strategy> {
    if let Ok(s) = obj.cast::<PyStrategy>() {
        return Ok(s.get().to_core());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_str()?.parse().map_err(value_err);
    }
    let names: Vec<&str> = core::Strategy::ALL.iter().map(|s| s.name()).collect();
    Err(PyValueError::new_err(format!(
        "strategy = {}, expected a rhythm.Strategy or one of {}",
        repr(obj),
        names.join(", ")
    )))
}

// ---------------------------------------------------------------- Rhythm

/// One sequence's rhythm (SPEC sections 3-7): head groups, WAAD, FAI,
/// Delta, thresholds, and the preplan/anchor selections. Per-token arrays
/// are indexed by response offset `t - response_start`; position arrays
/// hold absolute positions `t`, ascending.
#[pyclass(name = "Rhythm", module = "rhythm._rust", frozen)]
pub struct PyRhythm {
    inner: core::Rhythm,
    params: core::Params,
}

fn ids_list(v: &[HeadId]) -> Vec<(usize, usize)> {
    v.to_vec()
}

fn positions_array<'py>(py: Python<'py>, v: &[usize]) -> Bound<'py, PyArray1<i64>> {
    v.iter()
        .map(|&x| x as i64)
        .collect::<Vec<_>>()
        .into_pyarray(py)
}

#[pymethods]
impl PyRhythm {
    /// `P`, the first response position.
    #[getter]
    fn response_start(&self) -> usize {
        self.inner.response_start
    }
    /// `n = N - P`, the number of response tokens.
    #[getter]
    fn n(&self) -> usize {
        self.inner.n
    }
    /// The response positions `P..N` (int64).
    #[getter]
    fn positions<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let v: Vec<usize> = self.inner.positions().collect();
        positions_array(py, &v)
    }
    /// `(layer, head, span)` of every candidate head, by `(layer, head)`.
    #[getter]
    fn spans(&self) -> Vec<(usize, usize, f64)> {
        self.inner
            .spans
            .iter()
            .map(|h| (h.layer, h.head, h.span))
            .collect()
    }
    /// The local heads `(layer, head)` (smallest spans), in span order.
    #[getter]
    fn local_heads(&self) -> Vec<(usize, usize)> {
        ids_list(&self.inner.groups.local)
    }
    /// The global heads `(layer, head)` (largest spans), in span order.
    #[getter]
    fn global_heads(&self) -> Vec<(usize, usize)> {
        ids_list(&self.inner.groups.global)
    }
    /// `{"local": [...], "global": [...]}`: pass as `groups=` to fix the
    /// head groups for other sequences (the static group mode).
    #[getter]
    fn groups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("local", ids_list(&self.inner.groups.local))?;
        d.set_item("global", ids_list(&self.inner.groups.global))?;
        Ok(d)
    }
    /// The receiver heads `(layer, head)`, best first.
    #[getter]
    fn receivers(&self) -> Vec<(usize, usize)> {
        ids_list(&self.inner.receivers)
    }
    /// `(layer, head, kurtosis)` of every candidate head (receiver scores).
    #[getter]
    fn kurtosis(&self) -> Vec<(usize, usize, f64)> {
        self.inner
            .kurtosis
            .iter()
            .map(|&((l, h), k)| (l, h, k))
            .collect()
    }
    /// WAAD of the local aggregate, per response token.
    #[getter]
    fn waad<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.inner.waad)
    }
    /// FAI of the global aggregate, per response token.
    #[getter]
    fn fai<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.inner.fai)
    }
    /// FAI of the receiver heads' mean map, per response token.
    #[getter]
    fn receiver_fai<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.inner.receiver_fai)
    }
    /// `Delta[t] = |WAAD[t] - WAAD[t+1]|`, 0 at the last token.
    #[getter]
    fn delta<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.inner.sel.delta)
    }
    /// Preplan tokens `TopQ(Delta, q)` (absolute positions).
    #[getter]
    fn preplan<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        positions_array(py, &self.inner.sel.preplan)
    }
    /// Anchor tokens `TopQ(FAI, q)` (absolute positions).
    #[getter]
    fn anchors<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        positions_array(py, &self.inner.sel.anchors)
    }
    /// Locally dominated anchors `D` (absolute positions).
    #[getter]
    fn dominated<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        positions_array(py, &self.inner.sel.dominated)
    }
    /// Their intro tokens `I(D)` (absolute positions).
    #[getter]
    fn intro<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        positions_array(py, &self.inner.sel.intro)
    }
    /// `tau_waad` in force.
    #[getter]
    fn tau_waad(&self) -> f64 {
        self.inner.sel.tau_waad
    }
    /// `tau_delta` in force.
    #[getter]
    fn tau_delta(&self) -> f64 {
        self.inner.sel.tau_delta
    }
    /// The parameters this rhythm was computed with.
    #[getter]
    fn params(&self) -> PyParams {
        PyParams {
            inner: self.params.clone(),
        }
    }

    /// `gamma` over this response for `strategy`, with this rhythm's
    /// parameters unless `params` is given. `entropy`: `H` per response token
    /// (length `n`), for the `entropy` strategy.
    #[pyo3(signature = (strategy, entropy=None, params=None))]
    fn gamma<'py>(
        &self,
        py: Python<'py>,
        strategy: &Bound<'py, PyAny>,
        entropy: Option<&Bound<'py, PyAny>>,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let s = strategy_of(strategy)?;
        let params = params_or(params, self.params.clone())?;
        let ent = entropy_of(py, entropy)?;
        gamma_core(
            py,
            s,
            self.inner.n,
            Some(&self.inner),
            ent.as_deref(),
            &params,
        )
    }

    /// The fields of `rhythm score --json` (`gamma` included when given), as
    /// plain Python values.
    #[pyo3(signature = (gamma=None))]
    fn to_dict<'py>(
        &self,
        py: Python<'py>,
        gamma: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let r = &self.inner;
        let d = PyDict::new(py);
        d.set_item("response_start", r.response_start)?;
        d.set_item("n", r.n)?;
        let heads = PyDict::new(py);
        let spans = PyList::empty(py);
        for h in &r.spans {
            let e = PyDict::new(py);
            e.set_item("layer", h.layer)?;
            e.set_item("head", h.head)?;
            e.set_item("span", h.span)?;
            spans.append(e)?;
        }
        heads.set_item("span", spans)?;
        heads.set_item("local", ids_list(&r.groups.local))?;
        heads.set_item("global", ids_list(&r.groups.global))?;
        d.set_item("heads", heads)?;
        d.set_item("positions", r.positions().collect::<Vec<_>>())?;
        d.set_item("waad", r.waad.clone())?;
        d.set_item("fai", r.fai.clone())?;
        d.set_item("delta", r.sel.delta.clone())?;
        if let Some(g) = gamma {
            let g = f64_vec(py, "gamma", g)?;
            d.set_item("gamma", g)?;
        }
        d.set_item("preplan", r.sel.preplan.clone())?;
        d.set_item("anchors", r.sel.anchors.clone())?;
        d.set_item("dominated", r.sel.dominated.clone())?;
        d.set_item("intro", r.sel.intro.clone())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "Rhythm(response_start={}, n={}, heads={}, local={}, global={}, preplan={}, anchors={}, dominated={})",
            r.response_start,
            r.n,
            r.spans.len(),
            r.groups.local.len(),
            r.groups.global.len(),
            r.sel.preplan.len(),
            r.sel.anchors.len(),
            r.sel.dominated.len()
        )
    }
}

// ---------------------------------------------------------------- arrays

/// `numpy.asarray(obj, dtype=float64)` as a dynamic-rank readonly array.
fn as_f64<'py>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    let np = py.import("numpy")?;
    let kw = PyDict::new(py);
    kw.set_item("dtype", "float64")?;
    let arr = np.call_method("asarray", (obj,), Some(&kw)).map_err(|e| {
        PyValueError::new_err(format!(
            "{name}: cannot read as a float64 array ({})",
            e.to_string().lines().next().unwrap_or("")
        ))
    })?;
    arr.extract::<PyReadonlyArrayDyn<'py, f64>>()
        .map_err(|_| PyValueError::new_err(format!("{name}: cannot read as a float64 array")))
}

/// A 1-D float64 vector, finite.
fn f64_vec<'py>(py: Python<'py>, name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Vec<f64>> {
    let a = as_f64(py, name, obj)?;
    if a.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "{name} has shape {:?}, expected a 1-D array",
            a.shape()
        )));
    }
    let v: Vec<f64> = a.as_array().iter().copied().collect();
    if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{name}[{i}] is {x}, expected a finite number"
        )));
    }
    Ok(v)
}

/// An optional entropy vector.
fn entropy_of<'py>(py: Python<'py>, obj: Option<&Bound<'py, PyAny>>) -> PyResult<Option<Vec<f64>>> {
    match obj {
        Some(e) if !e.is_none() => Ok(Some(f64_vec(py, "entropy", e)?)),
        _ => Ok(None),
    }
}

/// One layer's maps, `[heads, N, N]` as f32: borrowed when the caller's array
/// is C-contiguous float32, converted otherwise.
enum LayerData<'py> {
    Borrowed(PyReadonlyArray3<'py, f32>),
    Owned(Vec<f32>),
}

impl LayerData<'_> {
    fn as_slice(&self) -> &[f32] {
        match self {
            LayerData::Borrowed(a) => a.as_slice().expect("checked contiguous"),
            LayerData::Owned(v) => v,
        }
    }
}

/// One layer of a maps dict: its index, heads, `N` and data.
struct Layer<'py> {
    layer: usize,
    heads: usize,
    seq_len: usize,
    data: LayerData<'py>,
}

/// The layer index of a maps-dict key: an int, or a string `attn.<layer>`.
/// Other string keys (e.g. `logits` of a safetensors dump) are skipped, as
/// `rhythm score` skips other tensors.
fn layer_key(key: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    if let Ok(s) = key.cast::<PyString>() {
        let s = s.to_str()?;
        return match s.strip_prefix("attn.") {
            Some(l) => l.parse::<usize>().map(Some).map_err(|_| {
                PyValueError::new_err(format!(
                    "maps key '{s}': expected attn.<layer number> or an int layer"
                ))
            }),
            None => Ok(None),
        };
    }
    usize_of("maps key", key).map(Some)
}

/// One `[heads, N, N]` array as f32 (float32, float64 or float16).
fn layer_of<'py>(py: Python<'py>, layer: usize, v: &Bound<'py, PyAny>) -> PyResult<Layer<'py>> {
    let name = format!("maps[{layer}]");
    // Anything array-like (e.g. a CPU torch tensor) goes through numpy.
    let arr = if v.cast::<numpy::PyUntypedArray>().is_ok() {
        v.clone()
    } else {
        py.import("numpy")?
            .call_method1("asarray", (v,))
            .map_err(|e| {
                PyValueError::new_err(format!(
                    "{name}: not an array ({}); expected a float32, float64 or float16 array, e.g. tensor.float().numpy()",
                    e.to_string().lines().next().unwrap_or("")
                ))
            })?
    };
    let untyped = arr.cast::<numpy::PyUntypedArray>().map_err(|_| {
        PyValueError::new_err(format!("{name}: {}, expected a numpy array", repr(v)))
    })?;
    let shape = untyped.shape().to_vec();
    if shape.len() != 3 || shape[1] != shape[2] || shape[0] == 0 || shape[1] == 0 {
        return Err(PyValueError::new_err(format!(
            "{name} has shape {shape:?}, expected [heads, N, N] with heads, N >= 1"
        )));
    }
    let (heads, seq_len) = (shape[0], shape[1]);
    let data = if let Ok(a) = arr.extract::<PyReadonlyArray3<'py, f32>>() {
        if a.is_c_contiguous() {
            LayerData::Borrowed(a)
        } else {
            LayerData::Owned(a.as_array().iter().copied().collect())
        }
    } else if let Ok(a) = arr.extract::<PyReadonlyArray3<'py, f64>>() {
        LayerData::Owned(a.as_array().iter().map(|&x| x as f32).collect())
    } else if let Ok(a) = arr.extract::<PyReadonlyArray3<'py, half::f16>>() {
        LayerData::Owned(a.as_array().iter().map(|x| x.to_f32()).collect())
    } else {
        let dt = untyped.dtype().to_string();
        return Err(PyValueError::new_err(format!(
            "{name} has dtype {dt}, expected float32, float64 or float16"
        )));
    };
    Ok(Layer {
        layer,
        heads,
        seq_len,
        data,
    })
}

/// The layers of a maps dict, ascending, all with the same `N`.
fn layers_of<'py>(py: Python<'py>, maps: &Bound<'py, PyAny>) -> PyResult<Vec<Layer<'py>>> {
    let dict = maps.cast::<PyDict>().map_err(|_| {
        PyValueError::new_err(format!(
            "maps = {}, expected a dict {{layer: array [heads, N, N]}}",
            short_repr(maps)
        ))
    })?;
    let mut by_layer: BTreeMap<usize, Layer<'py>> = BTreeMap::new();
    for (k, v) in dict.iter() {
        let Some(layer) = layer_key(&k)? else {
            continue;
        };
        if by_layer.contains_key(&layer) {
            return Err(PyValueError::new_err(format!(
                "maps gives layer {layer} twice"
            )));
        }
        by_layer.insert(layer, layer_of(py, layer, &v)?);
    }
    let layers: Vec<Layer<'py>> = by_layer.into_values().collect();
    let Some(first) = layers.first() else {
        return Err(PyValueError::new_err(
            "no attention maps found (expected {layer: array [heads, N, N]} or keys attn.<layer>)",
        ));
    };
    let n = first.seq_len;
    if let Some(bad) = layers.iter().find(|l| l.seq_len != n) {
        return Err(PyValueError::new_err(format!(
            "maps[{}] covers N = {} tokens but maps[{}] covers {n}; every layer must cover the same sequence",
            bad.layer, bad.seq_len, first.layer
        )));
    }
    Ok(layers)
}

/// The first line of `repr(obj)`, cut at 60 characters.
fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let r = repr(obj);
    let line = r.lines().next().unwrap_or("").to_string();
    if line.chars().count() > 60 {
        format!("{}...", line.chars().take(60).collect::<String>())
    } else {
        line
    }
}

/// Validates every head (layers ascending, heads ascending: the CLI's order)
/// and streams it into a summary.
fn summarize(
    layers: &[(usize, usize, usize, &[f32])],
    cfg: &SummaryConfig,
) -> Result<Vec<HeadSummary>, core::CoreError> {
    cfg.validate()?;
    let mut out = Vec::new();
    for &(layer, heads, n, data) in layers {
        for h in 0..heads {
            let map = HeadMap {
                layer,
                head: h,
                seq_len: n,
                data: &data[h * n * n..(h + 1) * n * n],
            };
            map.validate()?;
            out.push(map.summarize(cfg));
        }
    }
    Ok(out)
}

/// Borrowed views of the layers, for work without the GIL.
fn views<'a>(layers: &'a [Layer<'_>]) -> Vec<(usize, usize, usize, &'a [f32])> {
    layers
        .iter()
        .map(|l| (l.layer, l.heads, l.seq_len, l.data.as_slice()))
        .collect()
}

/// Head groups from `None`, a `Rhythm`, or `{"local": [...], "global": [...]}`.
fn groups_of(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<HeadGroups>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(r) = obj.cast::<PyRhythm>() {
        return Ok(Some(r.get().inner.groups.clone()));
    }
    let bad = || {
        PyValueError::new_err(format!(
            "groups = {}, expected a Rhythm or a dict {{\"local\": [(layer, head), ...], \"global\": [...]}}",
            short_repr(obj)
        ))
    };
    let d = obj.cast::<PyDict>().map_err(|_| bad())?;
    let list = |key: &str| -> PyResult<Vec<HeadId>> {
        let v = d.get_item(key)?.ok_or_else(bad)?;
        let items: Vec<Bound<'_, PyAny>> =
            v.try_iter().map_err(|_| bad())?.collect::<PyResult<_>>()?;
        items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let pair: Vec<Bound<'_, PyAny>> = it
                    .try_iter()
                    .and_then(|x| x.collect::<PyResult<_>>())
                    .unwrap_or_default();
                let name = format!("groups['{key}'][{i}]");
                if pair.len() != 2 {
                    return Err(PyValueError::new_err(format!(
                        "{name} = {}, expected a (layer, head) pair",
                        short_repr(it)
                    )));
                }
                Ok((usize_of(&name, &pair[0])?, usize_of(&name, &pair[1])?))
            })
            .collect()
    };
    Ok(Some(HeadGroups {
        local: list("local")?,
        global: list("global")?,
    }))
}

// ---------------------------------------------------------------- functions

/// The rhythm of one sequence from full attention maps.
///
/// `maps`: `{layer: array [heads, N, N]}` (float32, float64 or float16; keys
/// may also be `"attn.<layer>"`, other string keys are skipped), the
/// candidate heads. `response_start`: `P`. `params`: default `Params.rl()`.
/// `groups`: fix the head groups (a `Rhythm` or its `.groups`); default:
/// from this sequence's spans. Every map is validated (finite, non-negative,
/// causal, rows summing to 1) and then streamed into per-head summaries, the
/// path `rhythm score` takes, so the result equals the CLI's.
#[pyfunction]
#[pyo3(signature = (maps, response_start, params=None, groups=None))]
fn rhythm_from_maps<'py>(
    py: Python<'py>,
    maps: &Bound<'py, PyAny>,
    response_start: &Bound<'py, PyAny>,
    params: Option<&Bound<'py, PyAny>>,
    groups: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyRhythm> {
    let p = usize_of("response_start", response_start)?;
    let params = params_or(params, core::Params::rl())?;
    params.validate().map_err(value_err)?;
    let groups = groups_of(groups)?;
    let layers = layers_of(py, maps)?;
    let views = views(&layers);
    let n = views[0].2;
    let cfg = params.summary_config(p, n);
    let r = py
        .detach(|| {
            let summaries = summarize(&views, &cfg)?;
            core::Rhythm::from_summaries(&summaries, &params, groups.as_ref())
        })
        .map_err(value_err)?;
    Ok(PyRhythm { inner: r, params })
}

/// Per-head summaries of full maps, in the contract's dict format (what
/// `rhythm.torch.probe` returns, without entropy and log-probabilities):
/// `response_start, seq_len, window, horizon, proximity, layers, span_num
/// [L, H], waad [L, H, n], fai_sum [L, H, n], vert_sum [L, H, n]`.
/// Every layer must have the same number of heads.
#[pyfunction]
#[pyo3(signature = (maps, response_start, params=None))]
fn summarize_maps<'py>(
    py: Python<'py>,
    maps: &Bound<'py, PyAny>,
    response_start: &Bound<'py, PyAny>,
    params: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let p = usize_of("response_start", response_start)?;
    let params = params_or(params, core::Params::rl())?;
    params.validate().map_err(value_err)?;
    let layers = layers_of(py, maps)?;
    let heads = layers[0].heads;
    if let Some(bad) = layers.iter().find(|l| l.heads != heads) {
        return Err(PyValueError::new_err(format!(
            "maps[{}] has {} heads but maps[{}] has {heads}; summaries need the same heads in every layer",
            bad.layer, bad.heads, layers[0].layer
        )));
    }
    let views = views(&layers);
    let big_n = views[0].2;
    let cfg = params.summary_config(p, big_n);
    let sums = py.detach(|| summarize(&views, &cfg)).map_err(value_err)?;
    let (nl, n) = (layers.len(), cfg.n());
    let mut span = Vec::with_capacity(nl * heads);
    let (mut waad, mut fai, mut vert) = (
        Vec::with_capacity(nl * heads * n),
        Vec::with_capacity(nl * heads * n),
        Vec::with_capacity(nl * heads * n),
    );
    for s in &sums {
        span.push(s.span_numerator());
        waad.extend_from_slice(s.waad());
        fai.extend_from_slice(s.fai_sum());
        vert.extend_from_slice(s.vert_sum());
    }
    let shape3 = |v: Vec<f64>| -> PyResult<Bound<'py, PyArray3<f64>>> {
        v.into_pyarray(py).reshape([nl, heads, n])
    };
    let d = PyDict::new(py);
    d.set_item("response_start", p)?;
    d.set_item("seq_len", big_n)?;
    d.set_item("window", params.window)?;
    d.set_item("horizon", horizon_py(params.horizon))?;
    d.set_item("proximity", params.proximity)?;
    d.set_item("layers", layers.iter().map(|l| l.layer).collect::<Vec<_>>())?;
    let span2: Bound<'py, PyArray2<f64>> = span.into_pyarray(py).reshape([nl, heads])?;
    d.set_item("span_num", span2)?;
    d.set_item("waad", shape3(waad)?)?;
    d.set_item("fai_sum", shape3(fai)?)?;
    d.set_item("vert_sum", shape3(vert)?)?;
    Ok(d)
}

/// A required key of a summary dict.
fn key<'py>(d: &Bound<'py, PyDict>, k: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(k)?.ok_or_else(|| {
        PyValueError::new_err(format!(
            "summary has no '{k}' (expected keys response_start, seq_len, window, horizon, proximity, layers, span_num, waad, fai_sum, vert_sum)"
        ))
    })
}

/// A float64 array of exactly `shape`.
fn shaped<'py>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
    shape: &[usize],
) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    let a = as_f64(py, name, obj)?;
    if a.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "summary '{name}' has shape {:?}, expected {shape:?}",
            a.shape()
        )));
    }
    Ok(a)
}

/// Parses a summary dict into per-head summaries and the parameters to use.
fn summaries_of<'py>(
    py: Python<'py>,
    summary: &Bound<'py, PyAny>,
    params: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Vec<HeadSummary>, core::Params)> {
    let d = summary.cast::<PyDict>().map_err(|_| {
        PyValueError::new_err(format!(
            "summary = {}, expected a dict (the format of rhythm.torch.probe / rhythm.summarize_maps)",
            short_repr(summary)
        ))
    })?;
    let p = usize_of("summary 'response_start'", &key(d, "response_start")?)?;
    let big_n = usize_of("summary 'seq_len'", &key(d, "seq_len")?)?;
    let window = usize_of("summary 'window'", &key(d, "window")?)?;
    let horizon = horizon_of("summary 'horizon'", &key(d, "horizon")?)?;
    let proximity = usize_of("summary 'proximity'", &key(d, "proximity")?)?;
    let cfg = SummaryConfig {
        response_start: p,
        seq_len: big_n,
        window,
        horizon,
        proximity,
    };
    cfg.validate().map_err(value_err)?;
    let params = match params {
        Some(x) if !x.is_none() => {
            let params = params_or(Some(x), core::Params::rl())?;
            for (name, got, want) in [
                ("window", params.window, window),
                ("proximity", params.proximity, proximity),
            ] {
                if got != want {
                    return Err(PyValueError::new_err(format!(
                        "summary was computed with {name} {want} but params has {name} {got}"
                    )));
                }
            }
            if params.horizon != horizon {
                let show = |h: (usize, usize)| {
                    let (lo, hi) = horizon_py(h);
                    format!("({lo}, {})", hi.map_or("None".into(), |x| x.to_string()))
                };
                return Err(PyValueError::new_err(format!(
                    "summary was computed with horizon {} but params has horizon {}",
                    show(horizon),
                    show(params.horizon)
                )));
            }
            params
        }
        _ => core::Params {
            window,
            horizon,
            proximity,
            ..core::Params::rl()
        },
    };
    params.validate().map_err(value_err)?;
    let layers_obj = key(d, "layers")?;
    let layer_items: Vec<Bound<'py, PyAny>> = layers_obj
        .try_iter()
        .map_err(|_| {
            PyValueError::new_err(format!(
                "summary 'layers' = {}, expected a list of layer indices",
                short_repr(&layers_obj)
            ))
        })?
        .collect::<PyResult<_>>()?;
    let layers: Vec<usize> = layer_items
        .iter()
        .enumerate()
        .map(|(i, x)| usize_of(&format!("summary 'layers'[{i}]"), x))
        .collect::<PyResult<_>>()?;
    let span = as_f64(py, "span_num", &key(d, "span_num")?)?;
    if span.ndim() != 2 || span.shape()[0] != layers.len() {
        return Err(PyValueError::new_err(format!(
            "summary 'span_num' has shape {:?}, expected [{}, heads] (one row per entry of 'layers')",
            span.shape(),
            layers.len()
        )));
    }
    let heads = span.shape()[1];
    let n = cfg.n();
    let shape = [layers.len(), heads, n];
    let waad = shaped(py, "waad", &key(d, "waad")?, &shape)?;
    let fai = shaped(py, "fai_sum", &key(d, "fai_sum")?, &shape)?;
    let vert = shaped(py, "vert_sum", &key(d, "vert_sum")?, &shape)?;
    let (span, waad, fai, vert) = (
        span.as_array(),
        waad.as_array(),
        fai.as_array(),
        vert.as_array(),
    );
    let mut out = Vec::with_capacity(layers.len() * heads);
    for (i, &layer) in layers.iter().enumerate() {
        for h in 0..heads {
            let row = |a: &numpy::ndarray::ArrayViewD<'_, f64>| -> Vec<f64> {
                (0..n).map(|t| a[[i, h, t]]).collect()
            };
            out.push(
                HeadSummary::from_parts(
                    layer,
                    h,
                    &cfg,
                    span[[i, h]],
                    row(&waad),
                    row(&fai),
                    row(&vert),
                )
                .map_err(value_err)?,
            );
        }
    }
    Ok((out, params))
}

/// The rhythm of one sequence from per-head summaries in the contract's dict
/// format (`rhythm.torch.probe`'s output or `summarize_maps`'s).
///
/// `params`: default `Params.rl()` with the summary's window, horizon and
/// proximity; when given, those three must match the summary's.
#[pyfunction]
#[pyo3(signature = (summary, params=None, groups=None))]
fn rhythm_from_summaries<'py>(
    py: Python<'py>,
    summary: &Bound<'py, PyAny>,
    params: Option<&Bound<'py, PyAny>>,
    groups: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyRhythm> {
    let (sums, params) = summaries_of(py, summary, params)?;
    let groups = groups_of(groups)?;
    let r = py
        .detach(|| core::Rhythm::from_summaries(&sums, &params, groups.as_ref()))
        .map_err(value_err)?;
    Ok(PyRhythm { inner: r, params })
}

fn gamma_core<'py>(
    py: Python<'py>,
    strategy: core::Strategy,
    n: usize,
    rhythm: Option<&core::Rhythm>,
    entropy: Option<&[f64]>,
    params: &core::Params,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    // A response length too large to allocate is an error, not an abort.
    if Vec::<f64>::new().try_reserve_exact(n).is_err() {
        return Err(pyo3::exceptions::PyMemoryError::new_err(format!(
            "gamma: n = {n} values cannot be allocated"
        )));
    }
    let inputs = core::CreditInputs { n, rhythm, entropy };
    let g = core::gamma(strategy, &inputs, params).map_err(value_err)?;
    Ok(g.into_pyarray(py))
}

/// The per-token credit scale `gamma` (float64, length `n`) of `strategy`.
///
/// `n`: response length (default: `rhythm.n`). `rhythm`: a `Rhythm`, needed
/// by local, global, coupled and the bottom ablations. `entropy`: `H` per
/// response token (length `n`), needed by `entropy`. `params`: default the
/// rhythm's parameters, else `Params.rl()`.
#[pyfunction]
#[pyo3(signature = (strategy, n=None, rhythm=None, entropy=None, params=None))]
fn gamma<'py>(
    py: Python<'py>,
    strategy: &Bound<'py, PyAny>,
    n: Option<&Bound<'py, PyAny>>,
    rhythm: Option<&Bound<'py, PyAny>>,
    entropy: Option<&Bound<'py, PyAny>>,
    params: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let s = strategy_of(strategy)?;
    let r: Option<Bound<'py, PyRhythm>> = match rhythm {
        Some(r) if !r.is_none() => Some(r.cast::<PyRhythm>().cloned().map_err(|_| {
            PyValueError::new_err(format!(
                "rhythm = {}, expected a rhythm.Rhythm (from rhythm_from_maps or rhythm_from_summaries)",
                short_repr(r)
            ))
        })?),
        _ => None,
    };
    let r = r.as_ref().map(|b| b.get());
    let n = match n {
        Some(x) if !x.is_none() => usize_of("n", x)?,
        _ => match r {
            Some(r) => r.inner.n,
            None => {
                return Err(PyValueError::new_err(
                    "gamma needs n (the response length) when no rhythm is given",
                ))
            }
        },
    };
    let default = r.map_or_else(core::Params::rl, |r| r.params.clone());
    let params = params_or(params, default)?;
    let ent = entropy_of(py, entropy)?;
    gamma_core(py, s, n, r.map(|r| &r.inner), ent.as_deref(), &params)
}

/// Group-relative advantages `(r - mean) / (std + 1e-6)` (population std;
/// all-equal rewards give zeros), float64.
#[pyfunction]
fn group_advantages<'py>(
    py: Python<'py>,
    rewards: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let r = f64_vec(py, "rewards", rewards)?;
    Ok(core::group_advantages(&r).into_pyarray(py))
}

/// Per-token shaped advantages: `gamma * advantage` when `advantage >= 0`,
/// else `advantage` everywhere (only non-negative advantages are shaped).
#[pyfunction]
fn shaped_advantages<'py>(
    py: Python<'py>,
    advantage: &Bound<'py, PyAny>,
    gamma: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let a = float_of("advantage", advantage)?;
    if !a.is_finite() {
        return Err(PyValueError::new_err(format!(
            "advantage = {a}, expected a finite number"
        )));
    }
    let g = f64_vec(py, "gamma", gamma)?;
    Ok(core::shaped_advantages(a, &g).into_pyarray(py))
}

/// Per-token entropy from logits, as `rhythm score` computes it: `H[t]` is
/// the entropy (natural log) of `softmax(logits[t - 1])`, the distribution
/// token `t` was drawn from, and `H[0] = 0`. `logits`: `[N, vocab]` (float32,
/// float64 or float16; read as float32 like the CLI). Returns float64 `[N]`;
/// slice `[response_start:]` for `gamma`'s `entropy`.
#[pyfunction]
fn token_entropy<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let np = py.import("numpy")?;
    let kw = PyDict::new(py);
    kw.set_item("dtype", "float32")?;
    let arr = np
        .call_method("ascontiguousarray", (logits,), Some(&kw))
        .map_err(|e| {
            PyValueError::new_err(format!(
                "logits: cannot read as a float32 array ({})",
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
    let a = arr
        .extract::<PyReadonlyArrayDyn<'py, f32>>()
        .map_err(|_| PyValueError::new_err("logits: cannot read as a float32 array"))?;
    let shape = a.shape().to_vec();
    if shape.len() != 2 || shape[1] == 0 {
        return Err(PyValueError::new_err(format!(
            "logits has shape {shape:?}, expected [N, vocab] with vocab >= 1"
        )));
    }
    let (n, v) = (shape[0], shape[1]);
    let data = a.as_slice().map_err(value_err)?;
    if data.iter().any(|x| !x.is_finite()) {
        return Err(PyValueError::new_err("logits hold a NaN or infinity"));
    }
    let h = py.detach(|| {
        let mut h = vec![0.0; n];
        for t in 1..n {
            h[t] = core::entropy(&data[(t - 1) * v..t * v]);
        }
        h
    });
    Ok(h.into_pyarray(py))
}

/// The layers SPEC section 2 samples from a model with `num_layers` layers
/// (five evenly spaced layers of the middle third, ascending, de-duplicated);
/// pick these keys of a maps dict to score as `rhythm score --layers sampled`.
#[pyfunction]
fn sample_layers(num_layers: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    Ok(core::sample_layers(usize_of("num_layers", num_layers)?))
}

/// The `rhythm._rust` module.
#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyParams>()?;
    m.add_class::<PyStrategy>()?;
    m.add_class::<PyRhythm>()?;
    m.add_function(wrap_pyfunction!(rhythm_from_maps, m)?)?;
    m.add_function(wrap_pyfunction!(rhythm_from_summaries, m)?)?;
    m.add_function(wrap_pyfunction!(summarize_maps, m)?)?;
    m.add_function(wrap_pyfunction!(gamma, m)?)?;
    m.add_function(wrap_pyfunction!(group_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(shaped_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(token_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(sample_layers, m)?)?;
    let names: Vec<&str> = core::Strategy::ALL.iter().map(|s| s.name()).collect();
    m.add("STRATEGIES", PyTuple::new(m.py(), names)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
