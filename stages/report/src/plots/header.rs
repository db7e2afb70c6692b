//! The title, legend and notes above a chart.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{FONT, INK, MAX_TITLE_CHARS, SMALL_PX, TITLE_PX, text, text_width, truncate};
use super::{Area, DrawResult, WIDTH};

#[derive(Debug, Clone, Copy)]
pub(super) enum Swatch {
    Fill(RGBColor),
    Band(RGBColor),
    Box(RGBColor),
    Line(RGBColor, u32),
    Dashed(RGBColor),
    Tick(RGBColor, u32),
    Dot(RGBColor),
    Whisker(RGBColor),
}

/// Title, a wrapped legend line and note lines above the chart.
pub(super) struct Header {
    pub(super) title: String,
    pub(super) legend: Vec<(Swatch, String)>,
    pub(super) notes: Vec<(String, RGBColor)>,
}

const PAD_X: i32 = 10;
const TITLE_LINE: i32 = 22;
const LEGEND_LINE: i32 = 17;
const NOTE_LINE: i32 = 16;

struct HeaderLayout {
    /// (x, y-centre, swatch, label)
    legend: Vec<(i32, i32, Swatch, String)>,
    /// (y-centre, text, colour)
    notes: Vec<(i32, String, RGBColor)>,
    height: u32,
}

impl Header {
    fn layout(&self) -> HeaderLayout {
        let right = WIDTH as i32 - PAD_X;
        let mut y = 6 + TITLE_LINE;
        let mut legend = Vec::new();
        if !self.legend.is_empty() {
            let mut x = PAD_X;
            let mut yc = y + LEGEND_LINE / 2;
            for (sw, label) in &self.legend {
                let label = truncate(label, 40);
                let w = 18 + text_width(&label, SMALL_PX) as i32 + 14;
                if x > PAD_X && x + w > right {
                    x = PAD_X;
                    yc += LEGEND_LINE;
                }
                legend.push((x, yc, *sw, label));
                x += w;
            }
            y = yc + LEGEND_LINE / 2 + 1;
        }
        let mut notes = Vec::new();
        let max_chars = ((right - PAD_X) as f64 / (SMALL_PX * 0.6)) as usize;
        for (note, colour) in &self.notes {
            notes.push((y + NOTE_LINE / 2, truncate(note, max_chars), *colour));
            y += NOTE_LINE;
        }
        HeaderLayout {
            legend,
            notes,
            height: (y + 4) as u32,
        }
    }

    pub(super) fn height(&self) -> u32 {
        self.layout().height
    }

    pub(super) fn draw(&self, root: &Area<'_>) -> DrawResult {
        let layout = self.layout();
        let title = truncate(&self.title, MAX_TITLE_CHARS);
        root.draw(&Text::new(
            title,
            (PAD_X, 6 + TITLE_LINE / 2),
            (FONT, TITLE_PX * 1.24)
                .into_font()
                .style(FontStyle::Bold)
                .color(&INK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        for (x, yc, sw, label) in &layout.legend {
            draw_swatch(root, *x, *yc, *sw)?;
            root.draw(&Text::new(
                label.clone(),
                (x + 18, *yc),
                text(SMALL_PX, INK).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        for (yc, note, colour) in &layout.notes {
            root.draw(&Text::new(
                note.clone(),
                (PAD_X, *yc),
                text(SMALL_PX, *colour).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    }
}

fn draw_swatch(root: &Area<'_>, x: i32, y: i32, sw: Swatch) -> DrawResult {
    match sw {
        Swatch::Fill(c) => root.draw(&Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()))?,
        Swatch::Band(c) => root.draw(&Rectangle::new(
            [(x, y - 5), (x + 14, y + 5)],
            c.mix(0.2).filled(),
        ))?,
        Swatch::Box(c) => {
            root.draw(&Rectangle::new(
                [(x, y - 5), (x + 14, y + 5)],
                c.mix(0.25).filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x, y - 5), (x + 14, y + 5)],
                c.stroke_width(1),
            ))?;
        }
        Swatch::Line(c, w) => root.draw(&PathElement::new(
            vec![(x, y), (x + 14, y)],
            c.stroke_width(w),
        ))?,
        Swatch::Dashed(c) => {
            root.draw(&PathElement::new(
                vec![(x, y), (x + 5, y)],
                c.stroke_width(2),
            ))?;
            root.draw(&PathElement::new(
                vec![(x + 9, y), (x + 14, y)],
                c.stroke_width(2),
            ))?;
        }
        Swatch::Tick(c, w) => root.draw(&PathElement::new(
            vec![(x + 7, y - 6), (x + 7, y + 6)],
            c.stroke_width(w),
        ))?,
        Swatch::Dot(c) => root.draw(&Circle::new((x + 7, y), 3, c.filled()))?,
        Swatch::Whisker(c) => {
            root.draw(&PathElement::new(
                vec![(x, y), (x + 14, y)],
                c.stroke_width(1),
            ))?;
            for e in [x, x + 14] {
                root.draw(&PathElement::new(
                    vec![(e, y - 4), (e, y + 4)],
                    c.stroke_width(1),
                ))?;
            }
        }
    }
    Ok(())
}
