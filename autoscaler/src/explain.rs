//! Plain-language explanations of recommended numbers: the inputs that went in and the
//! steps that produced the number, in order, so a person can redo the arithmetic.
//!
//! An [`Explanation`] is data (serialisable for the recommendations API) and renders to
//! text with `Display`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why one number has the value it has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// One sentence: what the number is and its value.
    pub summary: String,
    /// Named inputs with their values, as they were used.
    pub inputs: Vec<Input>,
    /// The computation, one step per line.
    pub steps: Vec<Step>,
}

/// A named input value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    pub value: String,
}

/// One step of a computation and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub description: String,
    pub result: String,
}

impl Explanation {
    pub fn new(summary: impl Into<String>) -> Explanation {
        Explanation {
            summary: summary.into(),
            inputs: Vec::new(),
            steps: Vec::new(),
        }
    }

    pub fn input(&mut self, name: impl Into<String>, value: impl fmt::Display) -> &mut Self {
        self.inputs.push(Input {
            name: name.into(),
            value: value.to_string(),
        });
        self
    }

    pub fn step(&mut self, description: impl Into<String>, result: impl fmt::Display) -> &mut Self {
        self.steps.push(Step {
            description: description.into(),
            result: result.to_string(),
        });
        self
    }

    /// Appends another explanation's inputs (skipping ones already listed) and steps
    /// (its summary becomes a step).
    pub fn absorb(&mut self, other: Explanation) {
        for input in other.inputs {
            if !self.inputs.contains(&input) {
                self.inputs.push(input);
            }
        }
        if !other.summary.is_empty() && !other.steps.is_empty() {
            self.steps.push(Step {
                description: other.summary,
                result: String::new(),
            });
        }
        self.steps.extend(other.steps);
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary)?;
        if !self.inputs.is_empty() {
            writeln!(f, "  inputs:")?;
            for input in &self.inputs {
                writeln!(f, "    {}: {}", input.name, input.value)?;
            }
        }
        if !self.steps.is_empty() {
            writeln!(f, "  steps:")?;
            for (i, step) in self.steps.iter().enumerate() {
                if step.result.is_empty() {
                    writeln!(f, "    {}. {}", i + 1, step.description)?;
                } else {
                    writeln!(f, "    {}. {} = {}", i + 1, step.description, step.result)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_inputs_and_numbered_steps() {
        let mut e = Explanation::new("cpu target is 587m");
        e.input("samples", 11520).input("half-life", "24h");
        e.step(
            "p90 of the usage histogram, end of its bucket",
            "0.511 cores",
        )
        .step("plus the 15 % safety margin", "587m");
        assert_eq!(
            e.to_string(),
            "cpu target is 587m\n  inputs:\n    samples: 11520\n    half-life: 24h\n  steps:\n    1. p90 of the usage histogram, end of its bucket = 0.511 cores\n    2. plus the 15 % safety margin = 587m\n"
        );
    }
}
