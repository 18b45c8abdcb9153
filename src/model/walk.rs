//! Which files make up a model.
//!
//! - A directory: every regular file below it, hidden and empty files included (empty
//!   directories carry nothing), as `/`-separated paths relative to the directory, sorted by
//!   path segments ([`ModelPath`]'s order).
//! - One or more files: each stored under its file name.
//! - Symbolic links are refused unless `allow_symlinks` (then followed; loops are errors).
//! - Ignored by default, at the model root: `.git`, `.gitattributes`, `.github`, `.gitignore`
//!   (the OpenSSF model-signing defaults).
//! - Never listed, at any depth: our own temporary names, a pull's staging `.oci-model-*.partial`,
//!   its kept partial downloads `.oci-model-resume`, and a layout's `blobs/.tmp-*` (left by an
//!   interrupted run; a warning names each).
//! - `ignore` globs: a pattern without `/` matches a file or directory *name* at any depth
//!   (`*.tmp`, `checkpoint-*`); a pattern with `/` matches the whole relative path, where `*`
//!   stays within one segment and `**` crosses segments (`logs/**`, `sub/*.bin`). A matching
//!   directory is skipped with everything below it.

use super::cache::FileKey;
use super::paths::ModelPath;
use super::ModelError;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::{Component, Path, PathBuf};

/// Paths ignored at the model root unless told otherwise.
pub const DEFAULT_IGNORES: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    pub allow_symlinks: bool,
    /// Extra glob patterns to leave out.
    pub ignore: Vec<String>,
    /// Keep `.git`, `.gitattributes`, `.github`, `.gitignore`.
    pub keep_git_paths: bool,
    /// Exact model paths (files or directories, `/`-separated) to leave out, e.g. an OCI
    /// layout being written inside the model directory.
    pub exclude: Vec<String>,
}

/// One file of a model.
#[derive(Clone, Debug)]
pub struct LocalFile {
    /// Path inside the model.
    pub path: ModelPath,
    /// Where it is on disk.
    pub source: PathBuf,
    pub size: u64,
    /// Identity for the digest cache (None where the platform gives none).
    pub key: Option<FileKey>,
}

/// The files of a model and its default name.
#[derive(Clone, Debug)]
pub struct LocalModel {
    /// Directory name, or the first file's stem.
    pub name: String,
    /// The model directory (None for a list of files).
    pub root: Option<PathBuf>,
    pub files: Vec<LocalFile>,
}

impl LocalModel {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

struct Ignore {
    names: GlobSet,
    paths: GlobSet,
    git: bool,
    exact: Vec<String>,
}

impl Ignore {
    fn new(options: &WalkOptions) -> Result<Self, ModelError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for raw in &options.ignore {
            let p = raw
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            if p.is_empty() {
                return Err(ModelError::Input(format!(
                    "--ignore pattern {raw:?} is empty"
                )));
            }
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| ModelError::Input(format!("--ignore pattern {raw:?}: {e}")))?;
            if p.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| ModelError::Input(format!("--ignore patterns: {e}")))
        };
        Ok(Ignore {
            names: build(names)?,
            paths: build(paths)?,
            git: !options.keep_git_paths,
            exact: options.exclude.clone(),
        })
    }

    fn ignored(&self, rel: &str) -> bool {
        if (self.git && DEFAULT_IGNORES.contains(&rel)) || self.exact.iter().any(|e| e == rel) {
            return true;
        }
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.names.is_match(name) || self.paths.is_match(rel)
    }
}

/// The files of the model given as `sources`: one directory, or one or more files.
pub fn collect_model(sources: &[PathBuf], options: &WalkOptions) -> Result<LocalModel, ModelError> {
    let first = sources
        .first()
        .ok_or_else(|| ModelError::Input("no model directory or files given".into()))?;
    let meta = std::fs::metadata(first)
        .map_err(|e| ModelError::io(format!("cannot read {}", first.display()), e))?;
    if meta.is_dir() {
        if sources.len() > 1 {
            return Err(ModelError::Input(format!(
                "{} is a directory: give one model directory, or one or more files",
                first.display()
            )));
        }
        let files = walk_dir(first, options)?;
        if files.is_empty() {
            return Err(ModelError::Input(format!(
                "{} holds no files to push",
                first.display()
            )));
        }
        return Ok(LocalModel {
            name: dir_name(first),
            root: Some(first.clone()),
            files,
        });
    }
    let mut files = Vec::new();
    for path in sources {
        let link = std::fs::symlink_metadata(path)
            .map_err(|e| ModelError::io(format!("cannot read {}", path.display()), e))?;
        if link.file_type().is_symlink() && !options.allow_symlinks {
            return Err(symlink_refused(&path.display().to_string()));
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| ModelError::io(format!("cannot read {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(ModelError::Input(format!(
                "{} is not a regular file (give one directory, or files)",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                ModelError::Input(format!("{}: file name is not UTF-8", path.display()))
            })?
            .to_string();
        let name = check_pushable(&name)?;
        if files.iter().any(|f: &LocalFile| f.path == name) {
            return Err(ModelError::Input(format!(
                "two files are named {name:?}: files given directly are stored by file name"
            )));
        }
        files.push(LocalFile {
            path: name,
            source: path.clone(),
            size: meta.len(),
            key: FileKey::from_metadata(&meta),
        });
    }
    // Named after the first file given (before sorting).
    let name = Path::new(files[0].path.as_str())
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(LocalModel {
        name,
        root: None,
        files,
    })
}

fn dir_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string()
}

/// The model name `model_signing` records: the path's last component, or the resolved
/// directory's name for `.`/`..`.
pub fn model_name(path: &Path) -> String {
    let from = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty() && n != "..")
    };
    from(path)
        .or_else(|| path.canonicalize().ok().and_then(|p| from(&p)))
        .unwrap_or_else(|| "model".into())
}

fn symlink_refused(path: &str) -> ModelError {
    ModelError::Input(format!(
        "{path} is a symbolic link: symlinks are refused unless --allow-symlinks is given"
    ))
}

/// Refuse names that pull would refuse, so we never produce an unpullable artifact.
fn check_pushable(path: &str) -> Result<ModelPath, ModelError> {
    ModelPath::new(path).map_err(|reason| {
        ModelError::Input(format!(
            "cannot push file {path:?}: {reason} (such a path is refused on pull)"
        ))
    })
}

/// Our own temporary names are never model files: a pull's staging directory (or an older
/// version's partial file), `.oci-model-*.partial`, the partial downloads an interrupted pull
/// keeps for the next, `.oci-model-resume`, and a layout's blob being written, `blobs/.tmp-*`.
fn is_our_temp(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    super::paths::is_temp_name(name)
        || name == super::paths::RESUME_DIR
        || (name.starts_with(crate::store::layout::TEMP_PREFIX)
            && path.parent().and_then(|p| p.file_name()) == Some("blobs".as_ref()))
}

/// Every file below `root`, sorted by path segments.
pub fn walk_dir(root: &Path, options: &WalkOptions) -> Result<Vec<LocalFile>, ModelError> {
    let ignore = Ignore::new(options)?;
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(options.allow_symlinks)
        .into_iter()
        .filter_entry(|e| {
            if is_our_temp(e.path()) {
                tracing::warn!(
                    "skipping {}: a temporary file of an interrupted oci-model run",
                    e.path().display()
                );
                return false;
            }
            match relative(root, e.path()) {
                Ok(rel) => !ignore.ignored(&rel),
                Err(_) => true, // reported below
            }
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let at = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| root.display().to_string());
            if e.loop_ancestor().is_some() {
                ModelError::Input(format!("{at}: symbolic link loop"))
            } else {
                let what = format!("cannot read {at}");
                match e.into_io_error() {
                    Some(io) => ModelError::io(what, io),
                    None => ModelError::Input(what),
                }
            }
        })?;
        let rel = relative(root, entry.path())?;
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            // Only reached when links are not followed.
            return Err(symlink_refused(&entry.path().display().to_string()));
        }
        if file_type.is_dir() {
            continue;
        }
        if !file_type.is_file() {
            return Err(ModelError::Input(format!(
                "{} is not a regular file (sockets, pipes and devices cannot be pushed)",
                entry.path().display()
            )));
        }
        let path = check_pushable(&rel)?;
        let meta = entry.metadata().map_err(|e| {
            ModelError::Input(format!("cannot read {}: {e}", entry.path().display()))
        })?;
        files.push(LocalFile {
            path,
            source: entry.path().to_path_buf(),
            size: meta.len(),
            key: FileKey::from_metadata(&meta),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// `path` relative to `root`, `/`-separated; non-UTF-8 names are refused.
pub fn relative(root: &Path, path: &Path) -> Result<String, ModelError> {
    let rel = path.strip_prefix(root).map_err(|_| {
        ModelError::Input(format!("{} is outside {}", path.display(), root.display()))
    })?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().ok_or_else(|| {
                ModelError::Input(format!("{}: file name is not UTF-8", path.display()))
            })?),
            other => {
                return Err(ModelError::Input(format!(
                    "{}: unexpected path component {other:?}",
                    path.display()
                )))
            }
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, content) in files {
            let path = dir.path().join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn paths_of(files: &[LocalFile]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn lists_hidden_empty_and_nested_files_sorted() {
        let dir = tree(&[
            ("a.txt", b"x"),
            ("a-b", b""),
            ("a/b", b"yy"),
            (".hidden", b"h"),
            ("deep/er/file.bin", b"zzz"),
            (".git/HEAD", b"ref"),
            (".gitignore", b"*"),
            (
                "sub/.gitignore",
                b"kept: only root-level git paths are ignored",
            ),
        ]);
        fs::create_dir_all(dir.path().join("empty-dir")).unwrap();
        let files = walk_dir(dir.path(), &WalkOptions::default()).unwrap();
        assert_eq!(
            paths_of(&files),
            [
                ".hidden",
                "a/b",
                "a-b",
                "a.txt",
                "deep/er/file.bin",
                "sub/.gitignore"
            ]
        );
        assert_eq!(files[1].size, 2);
        assert_eq!(files[2].size, 0);
        let keep = WalkOptions {
            keep_git_paths: true,
            ..Default::default()
        };
        assert!(paths_of(&walk_dir(dir.path(), &keep).unwrap()).contains(&".git/HEAD"));
    }

    #[test]
    fn ignore_globs_match_names_anywhere_and_paths_from_the_root() {
        let dir = tree(&[
            ("keep.bin", b"1"),
            ("x.tmp", b"1"),
            ("sub/y.tmp", b"1"),
            ("checkpoints/step1/w.bin", b"1"),
            ("logs/a/b.log", b"1"),
            ("sub/z.bin", b"1"),
            ("sub/deeper/z.bin", b"1"),
        ]);
        let options = WalkOptions {
            ignore: vec![
                "*.tmp".into(),
                "checkpoints".into(),
                "logs/**".into(),
                "sub/*.bin".into(),
            ],
            ..Default::default()
        };
        let files = walk_dir(dir.path(), &options).unwrap();
        assert_eq!(paths_of(&files), ["keep.bin", "sub/deeper/z.bin"]);
        let exact = WalkOptions {
            exclude: vec!["sub/deeper".into(), "keep.bin".into()],
            ..Default::default()
        };
        let files = walk_dir(dir.path(), &exact).unwrap();
        assert!(!paths_of(&files)
            .iter()
            .any(|p| p.starts_with("sub/deeper") || *p == "keep.bin"));
        assert!(paths_of(&files).contains(&"sub/z.bin"));
        let bad = WalkOptions {
            ignore: vec!["a[".into()],
            ..Default::default()
        };
        assert!(matches!(
            walk_dir(dir.path(), &bad),
            Err(ModelError::Input(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused_unless_allowed() {
        let dir = tree(&[("real.bin", b"data")]);
        std::os::unix::fs::symlink("real.bin", dir.path().join("link.bin")).unwrap();
        let err = walk_dir(dir.path(), &WalkOptions::default()).unwrap_err();
        assert!(err.to_string().contains("link.bin"), "{err}");
        assert!(err.to_string().contains("--allow-symlinks"), "{err}");
        let allowed = WalkOptions {
            allow_symlinks: true,
            ..Default::default()
        };
        let files = walk_dir(dir.path(), &allowed).unwrap();
        assert_eq!(paths_of(&files), ["link.bin", "real.bin"]);
        assert_eq!(files[0].size, 4);
    }

    #[test]
    fn single_files_are_stored_by_name() {
        let dir = tree(&[
            ("m/model.gguf", b"gguf"),
            ("n/model.gguf", b"other"),
            ("n/README.md", b"r"),
        ]);
        let m = collect_model(
            &[
                dir.path().join("n/README.md"),
                dir.path().join("m/model.gguf"),
            ],
            &WalkOptions::default(),
        )
        .unwrap();
        assert_eq!(paths_of(&m.files), ["README.md", "model.gguf"]);
        assert!(m.root.is_none());
        let dup = collect_model(
            &[
                dir.path().join("m/model.gguf"),
                dir.path().join("n/model.gguf"),
            ],
            &WalkOptions::default(),
        );
        assert!(matches!(dup, Err(ModelError::Input(_))));
        let d = collect_model(&[dir.path().join("m")], &WalkOptions::default()).unwrap();
        assert_eq!(d.name, "m");
    }

    #[test]
    fn refuses_names_pull_would_refuse() {
        let dir = tree(&[("bad\\name", b"x")]);
        let err = walk_dir(dir.path(), &WalkOptions::default()).unwrap_err();
        assert!(err.to_string().contains("backslash"), "{err}");
    }

    #[test]
    fn our_own_temporary_files_are_never_model_files() {
        let dir = tree(&[
            ("w.bin", b"w"),
            (".oci-model-Ab12Cd.partial", b"half of a pull"),
            ("sub/.oci-model-Xy98Zz.partial/0", b"a staging directory"),
            ("layout/blobs/.tmp-Q1w2E3", b"half of a blob"),
            (
                ".oci-model-resume/sha256-00ff.part",
                b"a kept partial download",
            ),
            (
                "layout/blobs/sha256/.tmp-kept",
                b"not a temporary file of ours",
            ),
            (".oci-model-notes", b"not ours either"),
        ]);
        let files = walk_dir(dir.path(), &WalkOptions::default()).unwrap();
        assert_eq!(
            paths_of(&files),
            [".oci-model-notes", "layout/blobs/sha256/.tmp-kept", "w.bin"]
        );
    }
}
