//! A suite's figures: a table for people, one JSON line for machines.

use serde_json::{Map, Value};

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The JSON key, e.g. `http_commands_per_s`.
    pub key: String,
    /// What it is, for the table.
    pub label: String,
    /// The value.
    pub value: f64,
    /// Its unit, for the table (`/s`, `ms`, `x`, ...).
    pub unit: &'static str,
}

/// The figures of one or more suites, in the order measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The figures.
    pub figures: Vec<Figure>,
    /// Lines of context (the machine, what bounds a figure).
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a figure.
    pub fn add(&mut self, key: &str, label: &str, value: f64, unit: &'static str) {
        self.figures.push(Figure {
            key: key.to_owned(),
            label: label.to_owned(),
            value,
            unit,
        });
    }

    /// Adds a note printed under the table.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Appends another report's figures and notes.
    pub fn extend(&mut self, other: Report) {
        self.figures.extend(other.figures);
        self.notes.extend(other.notes);
    }

    /// The value of `key`, if measured.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// Prints the table.
    pub fn print_table(&self, title: &str) {
        println!("\n{title}");
        let width = self
            .figures
            .iter()
            .map(|f| f.label.len())
            .max()
            .unwrap_or(0);
        for figure in &self.figures {
            println!(
                "  {:<width$}  {:>14} {}",
                figure.label,
                format_value(figure.value),
                figure.unit
            );
        }
        for note in &self.notes {
            println!("  {note}");
        }
    }

    /// The figures as one JSON object (keys in order).
    pub fn json(&self) -> Value {
        let mut map = Map::new();
        for figure in &self.figures {
            let value = if figure.value.fract() == 0.0 && figure.value.abs() < 9e15 {
                Value::from(figure.value as i64)
            } else {
                Value::from((figure.value * 1000.0).round() / 1000.0)
            };
            map.insert(figure.key.clone(), value);
        }
        Value::Object(map)
    }
}

/// Thousands separators for large values, three decimals for small ones.
fn format_value(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let whole = value.round() as i64;
        let digits = whole.abs().to_string();
        let mut out = String::new();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(digit);
        }
        if whole < 0 { format!("-{out}") } else { out }
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_for_people_and_machines() {
        assert_eq!(format_value(1_234_567.4), "1,234,567");
        assert_eq!(format_value(0.5), "0.500");
        assert_eq!(format_value(12.0), "12");
        let mut report = Report::default();
        report.add("a_per_s", "a", 10.0, "/s");
        report.add("b_ms", "b", 0.12345, "ms");
        assert_eq!(report.json().to_string(), r#"{"a_per_s":10,"b_ms":0.123}"#);
    }
}
