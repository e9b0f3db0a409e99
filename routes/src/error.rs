//! Errors a person can act on: each names the file, line and column of the
//! offending YAML node and, when inside one, the route.

use std::fmt;

/// One problem in a route file. `line` and `column` are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub route: Option<String>,
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(route) = &self.route {
            write!(f, "route {route:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RouteError {}

/// Every problem found in one route file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteErrors(pub Vec<RouteError>);

impl RouteErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, RouteError> {
        self.0.iter()
    }
}

impl fmt::Display for RouteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RouteErrors {}

impl<'a> IntoIterator for &'a RouteErrors {
    type Item = &'a RouteError;
    type IntoIter = std::slice::Iter<'a, RouteError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
