//! The report's pictures: training and validation loss per source, and the mixing weights.

use anyhow::Result;
use std::path::Path;
use zest_kernels::plot::{line_chart_png, Chart};

/// Named (x, y) series.
pub type Named = Vec<(String, Vec<(f64, f64)>)>;

/// What the plots draw, by source.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Training loss of the batches drawn from each source, by step.
    pub train_loss: Named,
    /// Held-out loss of each source, by step.
    pub val_loss: Named,
    /// Each source's mixing weight, by step.
    pub weights: Named,
}

/// A moving average over `k` points, so that per-batch noise does not hide the trend.
fn smooth(points: &[(f64, f64)], k: usize) -> Vec<(f64, f64)> {
    if points.len() <= k {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(points.len());
    let mut sum = 0.0;
    for (i, (x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= k {
            sum -= points[i - k].1;
        }
        out.push((*x, sum / (i + 1).min(k) as f64));
    }
    out
}

/// Writes `losses.png`, `validation.png` and `mixing.png` into `dir`.
pub fn write(dir: &Path, s: &Series) -> Result<()> {
    let train = Chart {
        title: "training loss by source (moving average of 10 batches)".into(),
        x_label: "step".into(),
        series: s
            .train_loss
            .iter()
            .map(|(n, p)| (n.clone(), smooth(p, 10)))
            .collect(),
        y_range: None,
    };
    std::fs::write(dir.join("losses.png"), line_chart_png(&train, 720, 360))?;
    let val = Chart {
        title: "held-out loss by source".into(),
        x_label: "step".into(),
        series: s.val_loss.clone(),
        y_range: None,
    };
    std::fs::write(dir.join("validation.png"), line_chart_png(&val, 720, 360))?;
    let mix = Chart {
        title: "mixing weights".into(),
        x_label: "step".into(),
        series: s.weights.clone(),
        y_range: Some((0.0, 1.0)),
    };
    std::fs::write(dir.join("mixing.png"), line_chart_png(&mix, 720, 360))?;
    Ok(())
}
