//! Keys, DSSE, the OpenSSF model-signing statement, keyless signing.
