//! in-toto Statement v1 and SLSA provenance v1 builders.
