//! Opening a suite: prove every byte is the generator's, then hand out cases.

use std::collections::BTreeMap;
use std::path::Path;

use crate::gemm::GemmSpec;

use super::gemm_file::GemmFile;
use super::manifest::{self, Manifest, MANIFEST_FILE};
use super::{Kind, VectorError};

/// A verified vector suite, loaded in memory.
///
/// [`Suite::open`] checks, in this order: the manifest parses and is consistent; every data
/// file exists, has the manifest's size and SHA-256; every file's container and case table are
/// well formed and agree with the manifest. Only then are cases handed out, so a device checker
/// never compares against a corrupted expectation.
pub struct Suite {
    manifest: Manifest,
    manifest_sha256: String,
    source: String,
    files: Vec<LoadedFile>,
}

struct LoadedFile {
    first_case: u64,
    content: FileContent,
}

enum FileContent {
    Gemm(GemmFile),
}

/// One GEMM case: the full spec, its inputs and the expected output, all raw little-endian.
#[derive(Clone, Copy, Debug)]
pub struct GemmCase<'s> {
    /// Index of the case in its suite (`0..case_count`): its identity in results and reports.
    pub index: u64,
    /// Its category (e.g. `tie`, `nan-operand`, `normal`).
    pub category: &'s str,
    /// Precision, shape, accumulate flag and output conversion.
    pub spec: GemmSpec,
    /// `A`: `M×K` operands, row-major.
    pub a: &'s [u8],
    /// `B`: `K×N` operands, row-major.
    pub b: &'s [u8],
    /// `C`: `M×N` prior accumulators, present exactly when `spec.accumulate` is set.
    pub c: Option<&'s [u8]>,
    /// The expected `D`: `M×N` outputs in `spec.output`'s format.
    pub expected: &'s [u8],
}

/// One case of a suite, of whatever kind. Kinds beyond `Gemm` (the PoC pipeline's layers and
/// whole runs) are added as variants; match with a wildcard arm if you only handle some.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Case<'s> {
    /// A GEMM (levels 0 and 1).
    Gemm(GemmCase<'s>),
}

impl<'s> Case<'s> {
    /// The case's index in its suite.
    pub fn index(&self) -> u64 {
        match self {
            Case::Gemm(g) => g.index,
        }
    }

    /// The case's category name.
    pub fn category(&self) -> &'s str {
        match self {
            Case::Gemm(g) => g.category,
        }
    }

    /// The case's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Case::Gemm(_) => Kind::Gemm,
        }
    }

    /// The bytes a device must produce for this case.
    pub fn expected(&self) -> &'s [u8] {
        match self {
            Case::Gemm(g) => g.expected,
        }
    }
}

impl Suite {
    /// Opens and verifies the suite in directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Suite, VectorError> {
        let dir = dir.as_ref();
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_bytes = std::fs::read(&manifest_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                VectorError::Manifest {
                    file: manifest_path.display().to_string(),
                    message: format!(
                        "not found: {} is not a vector suite directory (generate one with \
                         `golden vectors generate`)",
                        dir.display()
                    ),
                }
            } else {
                VectorError::Read {
                    path: manifest_path.clone(),
                    source,
                }
            }
        })?;
        Suite::load(
            &manifest_bytes,
            &manifest_path.display().to_string(),
            |name| {
                let path = dir.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(VectorError::Read { path, source }),
                }
            },
            |name| dir.join(name).display().to_string(),
        )
    }

    /// Opens a suite held in memory (`files` maps data-file names to contents); `name` stands
    /// for the directory in messages.
    pub fn from_memory(
        manifest: &[u8],
        files: &BTreeMap<String, Vec<u8>>,
        name: &str,
    ) -> Result<Suite, VectorError> {
        Suite::load(
            manifest,
            &format!("{name}/{MANIFEST_FILE}"),
            |file| Ok(files.get(file).cloned()),
            |file| format!("{name}/{file}"),
        )
    }

    fn load(
        manifest_bytes: &[u8],
        manifest_name: &str,
        mut read: impl FnMut(&str) -> Result<Option<Vec<u8>>, VectorError>,
        display: impl Fn(&str) -> String,
    ) -> Result<Suite, VectorError> {
        let manifest =
            Manifest::parse(manifest_bytes).map_err(|message| VectorError::Manifest {
                file: manifest_name.to_owned(),
                message,
            })?;
        let mut files = Vec::with_capacity(manifest.files.len());
        for entry in &manifest.files {
            let shown = display(&entry.path);
            let bytes = read(&entry.path)?.ok_or_else(|| VectorError::MissingFile {
                file: shown.clone(),
                expected_bytes: entry.bytes,
            })?;
            if bytes.len() as u64 != entry.bytes {
                return Err(VectorError::SizeMismatch {
                    file: shown,
                    expected: entry.bytes,
                    actual: bytes.len() as u64,
                });
            }
            let digest = manifest::sha256_hex(&bytes);
            if digest != entry.sha256 {
                return Err(VectorError::HashMismatch {
                    file: shown,
                    expected: entry.sha256.clone(),
                    actual: digest,
                });
            }
            let corrupt = |message: String| VectorError::Corrupt {
                file: shown.clone(),
                message,
            };
            let cases = usize::try_from(entry.case_count)
                .map_err(|_| corrupt("too many cases for this machine".into()))?;
            let content = match entry.kind {
                Kind::Gemm => {
                    let file = GemmFile::parse(&bytes, cases, manifest.categories.len())
                        .map_err(&corrupt)?;
                    if let Some(precision) = &manifest.precision {
                        for i in 0..file.len() {
                            let spec = file.case(i).spec;
                            if spec.precision.name() != precision {
                                return Err(corrupt(format!(
                                    "case {} has precision {} but the suite is {precision}",
                                    entry.first_case + i as u64,
                                    spec.precision
                                )));
                            }
                        }
                    }
                    FileContent::Gemm(file)
                }
            };
            files.push(LoadedFile {
                first_case: entry.first_case,
                content,
            });
        }
        Ok(Suite {
            manifest_sha256: manifest::sha256_hex(manifest_bytes),
            manifest,
            source: manifest_name
                .strip_suffix(MANIFEST_FILE)
                .unwrap_or(manifest_name)
                .trim_end_matches('/')
                .to_owned(),
            files,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the manifest file: identifies this exact suite (results files carry it).
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// Where the suite was opened from (for messages).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of cases.
    pub fn len(&self) -> u64 {
        self.manifest.case_count
    }

    /// Whether the suite has no case (never true for a valid suite).
    pub fn is_empty(&self) -> bool {
        self.manifest.case_count == 0
    }

    /// Case `index`, if it exists.
    pub fn case(&self, index: u64) -> Option<Case<'_>> {
        let at = self.files.partition_point(|f| f.first_case <= index);
        let file = self.files.get(at.checked_sub(1)?)?;
        let local = usize::try_from(index - file.first_case).ok()?;
        match &file.content {
            FileContent::Gemm(g) => {
                (local < g.len()).then(|| self.gemm_case(g, file.first_case, local))
            }
        }
    }

    /// Every case, in index order.
    pub fn cases(&self) -> impl Iterator<Item = Case<'_>> + '_ {
        self.files.iter().flat_map(move |file| {
            let FileContent::Gemm(g) = &file.content;
            (0..g.len()).map(move |i| self.gemm_case(g, file.first_case, i))
        })
    }

    fn gemm_case<'s>(&'s self, file: &'s GemmFile, first_case: u64, i: usize) -> Case<'s> {
        let slices = file.case(i);
        Case::Gemm(GemmCase {
            index: first_case + i as u64,
            category: &self.manifest.categories[usize::from(slices.category)],
            spec: *slices.spec,
            a: slices.a,
            b: slices.b,
            c: slices.c,
            expected: slices.d,
        })
    }
}
