//! Registry credentials: command line, `~/.docker/config.json` (auths, credsStore,
//! credHelpers), Basic and bearer-token challenges.

use crate::secret::Secret;

/// Credentials for one registry.
#[derive(Clone, Debug)]
pub enum Credentials {
    Basic { username: String, password: Secret },
    /// An identity token / registry token used as a bearer token or refresh token.
    Token(Secret),
}
