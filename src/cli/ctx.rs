//! What every command gets besides its own arguments.

use super::{printer::Printer, settings::Settings};

/// Everything a command needs besides its own arguments.
pub struct Ctx {
    pub settings: Settings,
    pub printer: Printer,
}
