//! OCI distribution client (stub).
use super::*;
use crate::reference::RegistryRef;

pub struct RegistryStore;

impl RegistryStore {
    pub fn new(_r: &RegistryRef, _o: &StoreOptions) -> Result<Self> {
        Err(StoreError::Other("registry store not implemented".into()))
    }
}
