//! File roles → ModelPack layer media types, decided from the path alone (no content sniffing,
//! so the same directory always gives the same manifest).
//!
//! Rules, first match wins:
//! 1. Anything under a `data/`, `dataset/` or `datasets/` directory → dataset.
//! 2. Known configuration names (`config.json`, `generation_config.json`, `tokenizer*`,
//!    `special_tokens_map.json`, `vocab.*`, `merges.txt`, `added_tokens.json`,
//!    `preprocessor_config.json`, `*.safetensors.index.json`, sentencepiece models…) →
//!    weight.config.
//! 3. Documentation (`README*`, `LICENSE*`/`LICENCE*`, `NOTICE*`, `COPYING*`, `CHANGELOG*`,
//!    `MODEL_CARD*`, `*.md`, `*.rst`, `*.pdf`, images) → doc.
//! 4. Weights by extension (`.safetensors`, `.bin`, `.pt`, `.pth`, `.gguf`, `.onnx`, `.h5`,
//!    `.keras`, `.ckpt`, `.msgpack`, `.tflite`, `.pb`, `.npz`, `.pkl`…) → weight.
//! 5. Code by extension (`.py`, `.sh`, `.ipynb`, `.js`, `.rs`, `.go`, `.c`, `.cu`…) and build
//!    files (`Dockerfile`, `Makefile`, `requirements*.txt`, `pyproject.toml`) → code.
//! 6. Dataset files by extension (`.parquet`, `.arrow`, `.csv`, `.tsv`, `.jsonl`, `.tfrecord`,
//!    `.avro`, `.orc`, `.feather`, `.lance`…, also compressed `.jsonl.gz`/`.csv.gz`) → dataset.
//! 7. Other structured text (`.json`, `.yaml`, `.yml`, `.toml`, `.ini`, `.cfg`, `.conf`,
//!    `.txt`) → weight.config.
//! 8. Anything else → weight, flagged as a guess ([`Role::guessed`]): an unrecognised file in a
//!    model directory is most likely model data (custom tensor dumps, engine files), and a
//!    consumer that fetches only weights + configs should get it rather than silently lose it.
//!    The layer is annotated `org.cncf.model.file.mediatype.untested: true` as the ModelPack
//!    spec provides for unverified media types.

use crate::media_types as mt;

/// The role of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    pub media_type: &'static str,
    /// True when no rule matched and the media type is the default guess.
    pub guessed: bool,
}

const WEIGHT_EXT: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "gguf",
    "ggml",
    "ggjt",
    "onnx",
    "ort",
    "h5",
    "hdf5",
    "keras",
    "ckpt",
    "msgpack",
    "tflite",
    "pb",
    "npz",
    "npy",
    "pkl",
    "pickle",
    "joblib",
    "mlmodel",
    "mlpackage",
    "engine",
    "plan",
    "trt",
    "params",
    "caffemodel",
    "ot",
    "mar",
    "nemo",
    "llamafile",
    "pdparams",
    "pdmodel",
    "torchscript",
    "ptl",
    "xml_weights",
];
const CODE_EXT: &[&str] = &[
    "py", "pyi", "pyx", "ipynb", "sh", "bash", "zsh", "ps1", "bat", "js", "mjs", "ts", "go", "rs",
    "c", "cc", "cpp", "cxx", "h", "hpp", "cu", "cuh", "java", "scala", "kt", "swift", "m", "mm",
    "r", "jl", "lua", "rb", "pl", "php", "cs", "sql", "jinja", "j2",
];
const DATASET_EXT: &[&str] = &[
    "parquet",
    "arrow",
    "csv",
    "tsv",
    "jsonl",
    "ndjson",
    "tfrecord",
    "tfrecords",
    "avro",
    "orc",
    "feather",
    "lance",
    "webdataset",
    "recordio",
];
const DOC_EXT: &[&str] = &[
    "md", "markdown", "rst", "pdf", "png", "jpg", "jpeg", "gif", "svg", "webp", "html", "adoc",
];
const CONFIG_EXT: &[&str] = &["json", "yaml", "yml", "toml", "ini", "cfg", "conf", "txt"];
const COMPRESSED_EXT: &[&str] = &["gz", "zst", "bz2", "xz", "lz4"];

/// The role of the file at `path` (a `/`-separated model path).
pub fn role_of(path: &str) -> Role {
    let known = |media_type| Role {
        media_type,
        guessed: false,
    };
    let mut comps: Vec<&str> = path.split('/').collect();
    let name = comps.pop().unwrap_or("");
    let lower = name.to_ascii_lowercase();
    if comps.iter().any(|d| {
        matches!(
            d.to_ascii_lowercase().as_str(),
            "data" | "dataset" | "datasets"
        )
    }) {
        return known(mt::MODEL_DATASET);
    }
    let ext = extension(&lower);
    if is_config_name(&lower) && !CODE_EXT.contains(&ext) {
        return known(mt::MODEL_WEIGHT_CONFIG);
    }
    if is_doc_name(&lower) || DOC_EXT.contains(&ext) {
        return known(mt::MODEL_DOC);
    }
    if WEIGHT_EXT.contains(&ext) {
        return known(mt::MODEL_WEIGHT);
    }
    if CODE_EXT.contains(&ext) || is_code_name(&lower) {
        return known(mt::MODEL_CODE);
    }
    let inner_ext = if COMPRESSED_EXT.contains(&ext) {
        extension(&lower[..lower.len() - ext.len() - 1])
    } else {
        ext
    };
    if DATASET_EXT.contains(&inner_ext) {
        return known(mt::MODEL_DATASET);
    }
    if CONFIG_EXT.contains(&ext) {
        return known(mt::MODEL_WEIGHT_CONFIG);
    }
    Role {
        media_type: mt::MODEL_WEIGHT,
        guessed: true,
    }
}

/// Lowercase extension without the dot (`""` when none; a leading dot is not an extension).
fn extension(lower_name: &str) -> &str {
    match lower_name.rfind('.') {
        Some(i) if i > 0 => &lower_name[i + 1..],
        _ => "",
    }
}

fn is_config_name(n: &str) -> bool {
    matches!(
        n,
        "config.json"
            | "generation_config.json"
            | "special_tokens_map.json"
            | "added_tokens.json"
            | "preprocessor_config.json"
            | "processor_config.json"
            | "feature_extractor_config.json"
            | "image_processor_config.json"
            | "adapter_config.json"
            | "chat_template.json"
            | "chat_template.jinja"
            | "merges.txt"
            | "tokenizer.model"
            | "spiece.model"
            | "sentencepiece.bpe.model"
            | "params.json"
            | "modelfile"
    ) || n.starts_with("tokenizer")
        || n.starts_with("vocab.")
        || n.ends_with(".index.json")
        || n.ends_with(".tiktoken")
}

fn is_doc_name(n: &str) -> bool {
    [
        "readme",
        "license",
        "licence",
        "notice",
        "copying",
        "changelog",
        "model_card",
        "modelcard",
        "citation",
        "authors",
        "use_policy",
    ]
    .iter()
    .any(|p| n.starts_with(p))
}

fn is_code_name(n: &str) -> bool {
    matches!(
        n,
        "dockerfile" | "makefile" | "pyproject.toml" | "setup.cfg" | "cmakelists.txt" | "justfile"
    ) || (n.starts_with("requirements") && n.ends_with(".txt"))
}

/// The model format (ModelPack `config.format`) from the weight files: the format holding the
/// most bytes, `None` when no weight file has a recognised format. `files` are (path, size).
pub fn model_format<'a>(files: impl IntoIterator<Item = (&'a str, u64)>) -> Option<&'static str> {
    let mut totals: Vec<(&'static str, u64)> = Vec::new();
    for (path, size) in files {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        let format = match extension(&name) {
            "safetensors" => "safetensors",
            "gguf" | "ggml" | "ggjt" => "gguf",
            "onnx" | "ort" => "onnx",
            "pt" | "pth" | "torchscript" | "ptl" => "pytorch",
            "bin" if name.starts_with("pytorch_model") => "pytorch",
            "h5" | "hdf5" | "keras" => "keras",
            "tflite" => "tflite",
            "pb" => "tensorflow",
            "msgpack" => "flax",
            "pdparams" | "pdmodel" => "paddle",
            "mlmodel" | "mlpackage" => "coreml",
            "npz" | "npy" => "numpy",
            "pkl" | "pickle" | "joblib" => "pickle",
            _ => continue,
        };
        match totals.iter_mut().find(|(f, _)| *f == format) {
            Some((_, t)) => *t += size,
            None => totals.push((format, size)),
        }
    }
    // Most bytes wins; ties broken by name so the result never depends on file order.
    totals
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(f, _)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_model_files() {
        let cases = [
            ("model.safetensors", mt::MODEL_WEIGHT),
            ("model-00001-of-00002.safetensors", mt::MODEL_WEIGHT),
            ("pytorch_model.bin", mt::MODEL_WEIGHT),
            ("sub/model.gguf", mt::MODEL_WEIGHT),
            ("model.onnx", mt::MODEL_WEIGHT),
            ("config.json", mt::MODEL_WEIGHT_CONFIG),
            ("model.safetensors.index.json", mt::MODEL_WEIGHT_CONFIG),
            ("tokenizer.json", mt::MODEL_WEIGHT_CONFIG),
            ("tokenizer_config.json", mt::MODEL_WEIGHT_CONFIG),
            ("tokenizer.model", mt::MODEL_WEIGHT_CONFIG),
            ("vocab.txt", mt::MODEL_WEIGHT_CONFIG),
            ("merges.txt", mt::MODEL_WEIGHT_CONFIG),
            ("generation_config.json", mt::MODEL_WEIGHT_CONFIG),
            ("special_tokens_map.json", mt::MODEL_WEIGHT_CONFIG),
            ("hparams.yaml", mt::MODEL_WEIGHT_CONFIG),
            ("README.md", mt::MODEL_DOC),
            ("LICENSE", mt::MODEL_DOC),
            ("docs/usage.md", mt::MODEL_DOC),
            ("train.py", mt::MODEL_CODE),
            ("tokenizer.py", mt::MODEL_CODE),
            ("scripts/run.sh", mt::MODEL_CODE),
            ("demo.ipynb", mt::MODEL_CODE),
            ("requirements.txt", mt::MODEL_CODE),
            ("train.parquet", mt::MODEL_DATASET),
            ("eval.jsonl", mt::MODEL_DATASET),
            ("eval.jsonl.gz", mt::MODEL_DATASET),
            ("data/config.json", mt::MODEL_DATASET),
            ("datasets/x/README.md", mt::MODEL_DATASET),
        ];
        for (path, want) in cases {
            let role = role_of(path);
            assert_eq!(role.media_type, want, "{path}");
            assert!(!role.guessed, "{path}");
        }
    }

    #[test]
    fn unknown_files_are_guessed_weights() {
        for p in [".hidden", "blob.dat", "noext", "x/.env"] {
            let role = role_of(p);
            assert_eq!(role.media_type, mt::MODEL_WEIGHT, "{p}");
            assert!(role.guessed, "{p}");
        }
    }

    #[test]
    fn format_is_the_largest_weight_kind() {
        assert_eq!(
            model_format([("a.safetensors", 10), ("b.gguf", 5), ("config.json", 100)]),
            Some("safetensors")
        );
        assert_eq!(model_format([("a.onnx", 1), ("b.gguf", 5)]), Some("gguf"));
        assert_eq!(model_format([("README.md", 1)]), None);
        assert_eq!(model_format([("pytorch_model.bin", 1)]), Some("pytorch"));
        // Ties are broken by name, whatever the order.
        assert_eq!(model_format([("a.onnx", 5), ("b.gguf", 5)]), Some("gguf"));
        assert_eq!(model_format([("b.gguf", 5), ("a.onnx", 5)]), Some("gguf"));
    }
}
