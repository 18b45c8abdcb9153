//! OCI image layout (stub).
use super::*;
use std::path::Path;

pub struct LayoutStore;

impl LayoutStore {
    pub fn open_or_create(_p: &Path) -> Result<Self> {
        Err(StoreError::Other("layout store not implemented".into()))
    }
}
