//! Every measurement of a bench run: case → metric → (repetition, value), and the medians,
//! overheads and ratios the report and each bench's own Markdown read from them.

use std::collections::BTreeMap;

/// case → metric → (repetition, value).
#[derive(Default, Debug)]
pub struct Samples(BTreeMap<String, BTreeMap<String, Vec<(usize, f64)>>>);

impl Samples {
    /// Each case with its metrics' names, in order.
    pub fn cases(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &str>)> {
        self.0
            .iter()
            .map(|(case, metrics)| (case.as_str(), metrics.keys().map(String::as_str)))
    }

    pub fn add(&mut self, case: &str, metric: &str, rep: usize, value: f64) {
        self.0
            .entry(case.to_string())
            .or_default()
            .entry(metric.to_string())
            .or_default()
            .push((rep, value));
    }

    pub fn values(&self, case: &str, metric: &str) -> &[(usize, f64)] {
        self.0
            .get(case)
            .and_then(|m| m.get(metric))
            .map_or(&[], Vec::as_slice)
    }

    /// Median over repetitions.
    pub fn median(&self, case: &str, metric: &str) -> Option<f64> {
        median(self.values(case, metric).iter().map(|v| v.1).collect())
    }

    /// The values `case` is compared with: its own baseline (`{metric}_base`, measured right
    /// before it in the same job, so that both saw the same load) when it has one, else
    /// `base`'s values of the same repetition.
    fn baseline(&self, case: &str, base: &str, metric: &str) -> BTreeMap<usize, f64> {
        let own = self.values(case, &format!("{metric}_base"));
        let values = if own.is_empty() {
            self.values(base, metric)
        } else {
            own
        };
        values.iter().copied().collect()
    }

    /// Median over repetitions of `case − baseline`.
    pub fn overhead(&self, case: &str, base: &str, metric: &str) -> Option<f64> {
        let base = self.baseline(case, base, metric);
        median(
            self.values(case, metric)
                .iter()
                .filter_map(|(rep, v)| base.get(rep).map(|b| v - b))
                .collect(),
        )
    }

    /// Median over repetitions of `case / other`, ignoring either's own baseline.
    pub fn ratio_to(&self, case: &str, other: &str, metric: &str) -> Option<f64> {
        let other: BTreeMap<usize, f64> = self.values(other, metric).iter().copied().collect();
        median(
            self.values(case, metric)
                .iter()
                .filter_map(|(rep, v)| other.get(rep).map(|o| v / o))
                .collect(),
        )
    }

    /// Median over repetitions of `case / baseline`.
    pub fn ratio(&self, case: &str, base: &str, metric: &str) -> Option<f64> {
        let base = self.baseline(case, base, metric);
        median(
            self.values(case, metric)
                .iter()
                .filter_map(|(rep, v)| base.get(rep).map(|b| v / b))
                .collect(),
        )
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}
