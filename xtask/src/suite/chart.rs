//! The bar charts of `cargo xtask suite`: one group of bars per workload, one bar per
//! allocator, each the allocator's value relative to Ferroc's; drawn as SVG and PNG.
//!
//! Text is drawn with a TrueType font read at run time (DejaVu Sans, Debian's
//! `fonts-dejavu-core`), so the build needs no system font library.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// One chart's data.
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    /// The group labels along the x axis.
    pub groups: Vec<String>,
    /// One series per allocator: its name and its value in each group (`None`: no bar).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// Values above this are drawn cut at the top of the chart, with their value written above.
const CAP: f64 = 4.0;
const SIZE: (u32, u32) = (1400, 560);
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Loads and registers the font once; the path of the file loaded.
pub fn load_font() -> Result<&'static str, String> {
    static LOADED: OnceLock<Result<&'static str, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            for path in FONTS {
                if let Ok(bytes) = std::fs::read(path) {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                        return Ok(*path);
                    }
                }
            }
            Err(format!(
                "no TrueType font found (looked for {}); install fonts-dejavu-core",
                FONTS.join(", ")
            ))
        })
        .clone()
}

/// Draws `chart` as `<stem>.svg` and `<stem>.png` in `dir`.
pub fn write(chart: &BarChart, dir: &Path, stem: &str) -> Result<(), String> {
    load_font()?;
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), chart)
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), chart)
        .map_err(|e| format!("{}: {e}", png.display()))?;
    Ok(())
}

/// The colour of an allocator's bars.
fn colour(name: &str) -> RGBColor {
    match name {
        "ferroc" => RGBColor(214, 82, 38),
        "glibc" => RGBColor(128, 128, 128),
        "mimalloc" => RGBColor(45, 110, 190),
        "jemalloc" => RGBColor(60, 150, 80),
        "tcmalloc" => RGBColor(140, 80, 170),
        _ => RGBColor(40, 40, 40),
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &BarChart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let groups = chart.groups.len();
    let bars = chart.series.len().max(1);
    let highest = chart
        .series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten())
        .fold(1.0f64, |m, &v| m.max(v));
    let top = highest.min(CAP) * 1.12;

    let mut cc = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(14)
        .x_label_area_size(64)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..groups as f64, 0f64..top)
        .map_err(err)?;
    cc.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_desc(chart.y_label.as_str())
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;

    // Each group is one unit wide: the bars fill 80% of it, side by side.
    let width = 0.8 / bars as f64;
    for (s, (name, values)) in chart.series.iter().enumerate() {
        let fill = colour(name);
        let rects = values.iter().enumerate().filter_map(move |(g, v)| {
            let v = (*v)?;
            let x0 = g as f64 + 0.1 + s as f64 * width;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.92, v.min(top))],
                fill.filled(),
            ))
        });
        cc.draw_series(rects).map_err(err)?;
        // The value of a bar cut at the top.
        let cut = values.iter().enumerate().filter_map(move |(g, v)| {
            let v = (*v)?;
            (v > top).then(|| {
                let x = g as f64 + 0.1 + s as f64 * width;
                Text::new(format!("{v:.1}"), (x, top), ("sans-serif", 12).into_font())
            })
        });
        cc.draw_series(cut).map_err(err)?;
    }
    // Ferroc's level.
    cc.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (groups as f64, 1.0)],
        BLACK.stroke_width(1),
    )))
    .map_err(err)?;

    // Group labels under the axis, centred on their group.
    let style = TextStyle::from(("sans-serif", 15).into_font()).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ),
    );
    for (g, label) in chart.groups.iter().enumerate() {
        let (x, y) = cc.backend_coord(&(g as f64 + 0.5, 0.0));
        root.draw(&Text::new(label.clone(), (x, y + 8), style.clone()))
            .map_err(err)?;
    }
    // The legend: one row under the group labels, centred.
    let font = ("sans-serif", 15).into_font();
    let entry = |name: &str| 14 + 6 + font.box_size(name).map_or(60, |(w, _)| w as i32) + 24;
    let row: i32 = chart.series.iter().map(|(name, _)| entry(name)).sum();
    let (width, height) = root.dim_in_pixel();
    let mut x = (width as i32 - row) / 2;
    let y = height as i32 - 22;
    for (name, _) in &chart.series {
        root.draw(&Rectangle::new(
            [(x, y - 6), (x + 14, y + 8)],
            colour(name).filled(),
        ))
        .map_err(err)?;
        root.draw(&Text::new(name.clone(), (x + 20, y - 6), font.clone()))
            .map_err(err)?;
        x += entry(name);
    }
    root.present().map_err(err)?;
    Ok(())
}
