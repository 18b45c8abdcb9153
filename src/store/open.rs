//! Open the store a target names (the one place that knows every store kind).

use super::layout::LayoutStore;
use super::registry::RegistryStore;
use super::{Result, Store, StoreOptions};
use crate::reference::Target;
use std::sync::Arc;

/// Open the store a target names.
pub async fn open(target: &Target, options: &StoreOptions) -> Result<Arc<dyn Store>> {
    match target {
        Target::Registry(r) => Ok(Arc::new(RegistryStore::new(r, options)?)),
        Target::Layout(l) => Ok(Arc::new(LayoutStore::open_or_create(&l.path)?)),
    }
}
