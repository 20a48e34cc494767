//! The container every vector and results file uses: safetensors, written deterministically.
//!
//! A safetensors file is an 8-byte little-endian header length `n`, `n` bytes of JSON header
//! (padded with spaces to a multiple of 8), then the tensor bytes. The header maps each tensor
//! name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the start of
//! the data) and may hold a `"__metadata__"` map of strings. Python, C++ and Rust readers exist
//! for it, so a device team can read our vectors without our code.
//!
//! We write the files ourselves rather than with `safetensors::serialize` because the crate keeps
//! `__metadata__` in a `HashMap`, whose iteration order changes between runs: two generations
//! from the same seed must be byte-identical. Our writer orders tensors exactly as the crate does
//! (descending dtype alignment, then name, so every tensor is naturally aligned) and metadata by
//! key; without metadata its output is byte-identical to the crate's (tested). Reading goes
//! through the crate, which validates offsets, coverage and sizes.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};

/// A tensor to write: name, element type, shape and raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct TensorOut {
    /// Tensor name in the header.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape; the product times the element size must equal `data.len()`.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

impl TensorOut {
    /// A 1-D byte tensor (the payload tensors of vector files).
    pub fn bytes(name: &str, data: Vec<u8>) -> Self {
        TensorOut {
            name: name.to_owned(),
            dtype: Dtype::U8,
            shape: vec![data.len()],
            data,
        }
    }

    /// A 1-D `u16` tensor.
    pub fn u16s(name: &str, values: &[u16]) -> Self {
        Self::words(name, Dtype::U16, vec![values.len()], values, |v| {
            v.to_le_bytes().to_vec()
        })
    }

    /// A `u32` tensor of the given shape.
    pub fn u32s(name: &str, shape: Vec<usize>, values: &[u32]) -> Self {
        Self::words(name, Dtype::U32, shape, values, |v| {
            v.to_le_bytes().to_vec()
        })
    }

    /// An `i32` tensor of the given shape.
    pub fn i32s(name: &str, shape: Vec<usize>, values: &[i32]) -> Self {
        Self::words(name, Dtype::I32, shape, values, |v| {
            v.to_le_bytes().to_vec()
        })
    }

    /// A 1-D `u64` tensor.
    pub fn u64s(name: &str, values: &[u64]) -> Self {
        Self::words(name, Dtype::U64, vec![values.len()], values, |v| {
            v.to_le_bytes().to_vec()
        })
    }

    fn words<T>(
        name: &str,
        dtype: Dtype,
        shape: Vec<usize>,
        values: &[T],
        le: impl Fn(&T) -> Vec<u8>,
    ) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        TensorOut {
            name: name.to_owned(),
            dtype,
            shape,
            data: values.iter().flat_map(le).collect(),
        }
    }
}

/// Serialises tensors and metadata into one safetensors file, deterministically.
///
/// The header is built by hand (not through a JSON map) so that its byte layout is fixed: the
/// `__metadata__` entry first with keys in sorted order, then the tensors in data order, each as
/// `{"dtype":…,"shape":[…],"data_offsets":[begin,end]}` — the same spelling the crate uses.
pub fn write(mut tensors: Vec<TensorOut>, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    tensors.sort_by(|l, r| r.dtype.cmp(&l.dtype).then(l.name.cmp(&r.name)));
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let mut entries = Vec::with_capacity(tensors.len() + 1);
    if !metadata.is_empty() {
        let fields: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
            .collect();
        entries.push(format!("\"__metadata__\":{{{}}}", fields.join(",")));
    }
    let mut offset = 0usize;
    for t in &tensors {
        let end = offset + t.data.len();
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        entries.push(format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            quote(&t.name),
            dtype_name(t.dtype),
            shape.join(",")
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for t in &tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// The header spelling of a dtype (as the safetensors crate writes it).
fn dtype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::U8 => "U8",
        Dtype::I8 => "I8",
        Dtype::U16 => "U16",
        Dtype::I16 => "I16",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        Dtype::U32 => "U32",
        Dtype::I32 => "I32",
        Dtype::F32 => "F32",
        Dtype::U64 => "U64",
        Dtype::I64 => "I64",
        Dtype::F64 => "F64",
        other => unreachable!("the vector format never writes {other:?} tensors"),
    }
}

/// A parsed safetensors file with typed, checked access to its tensors.
pub struct TensorFile<'data> {
    tensors: SafeTensors<'data>,
    metadata: BTreeMap<String, String>,
}

/// A problem with one file's container structure, described for the user.
pub type ContainerError = String;

impl<'data> TensorFile<'data> {
    /// Parses and validates the container (offsets, sizes, full coverage of the data).
    pub fn parse(bytes: &'data [u8]) -> Result<Self, ContainerError> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a valid safetensors file: {e}"))?;
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| format!("not a valid safetensors file: {e}"))?;
        Ok(TensorFile { tensors, metadata })
    }

    /// The `__metadata__` entries (empty if none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.names().into_iter().map(String::from).collect();
        names.sort();
        names
    }

    /// Fails unless the file holds exactly the tensors in `expected`.
    pub fn require_exactly(&self, expected: &[&str]) -> Result<(), ContainerError> {
        let names = self.names();
        for want in expected {
            if !names.iter().any(|n| n == want) {
                return Err(format!("tensor `{want}` is missing"));
            }
        }
        if let Some(extra) = names.iter().find(|n| !expected.contains(&n.as_str())) {
            return Err(format!(
                "unexpected tensor `{extra}` (this format version has exactly: {})",
                expected.join(", ")
            ));
        }
        Ok(())
    }

    /// The raw bytes of a tensor after checking its dtype and shape (`None` in `shape` matches
    /// any extent).
    pub fn raw(
        &self,
        name: &str,
        dtype: Dtype,
        shape: &[Option<usize>],
    ) -> Result<(&'data [u8], Vec<usize>), ContainerError> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| format!("tensor `{name}` is missing"))?;
        if view.dtype() != dtype {
            return Err(format!(
                "tensor `{name}` has dtype {:?}, expected {dtype:?}",
                view.dtype()
            ));
        }
        let actual = view.shape();
        let shape_ok = actual.len() == shape.len()
            && actual
                .iter()
                .zip(shape)
                .all(|(a, want)| want.is_none_or(|w| w == *a));
        if !shape_ok {
            let want: Vec<String> = shape
                .iter()
                .map(|d| d.map_or("*".to_owned(), |d| d.to_string()))
                .collect();
            return Err(format!(
                "tensor `{name}` has shape {actual:?}, expected [{}]",
                want.join(", ")
            ));
        }
        Ok((view.data(), actual.to_vec()))
    }

    /// A 1-D `u8` tensor of any length.
    pub fn bytes(&self, name: &str) -> Result<&'data [u8], ContainerError> {
        Ok(self.raw(name, Dtype::U8, &[None])?.0)
    }

    /// A `u16` tensor of the given shape, decoded.
    pub fn u16s(&self, name: &str, shape: &[Option<usize>]) -> Result<Vec<u16>, ContainerError> {
        let (data, _) = self.raw(name, Dtype::U16, shape)?;
        Ok(data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }

    /// A `u32` tensor of the given shape, decoded.
    pub fn u32s(&self, name: &str, shape: &[Option<usize>]) -> Result<Vec<u32>, ContainerError> {
        let (data, _) = self.raw(name, Dtype::U32, shape)?;
        Ok(data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// An `i32` tensor of the given shape, decoded.
    pub fn i32s(&self, name: &str, shape: &[Option<usize>]) -> Result<Vec<i32>, ContainerError> {
        let (data, _) = self.raw(name, Dtype::I32, shape)?;
        Ok(data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// A `u64` tensor of the given shape, decoded.
    pub fn u64s(&self, name: &str, shape: &[Option<usize>]) -> Result<Vec<u64>, ContainerError> {
        let (data, _) = self.raw(name, Dtype::U64, shape)?;
        Ok(data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<TensorOut> {
        vec![
            TensorOut::bytes("z.payload", vec![1, 2, 3]),
            TensorOut::u16s("a.small", &[7, 8]),
            TensorOut::u32s("m.table", vec![2, 3], &[1, 2, 3, 4, 5, 6]),
            TensorOut::u64s("b.offsets", &[0, 3]),
            TensorOut::bytes("empty", vec![]),
        ]
    }

    struct View<'a>(&'a TensorOut);
    impl safetensors::View for View<'_> {
        fn dtype(&self) -> Dtype {
            self.0.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.0.shape
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.0.data)
        }
        fn data_len(&self) -> usize {
            self.0.data.len()
        }
    }

    #[test]
    fn without_metadata_equals_the_crates_serializer() {
        let ours = write(sample(), &BTreeMap::new());
        let tensors = sample();
        let theirs =
            safetensors::serialize(tensors.iter().map(|t| (t.name.clone(), View(t))), None)
                .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn metadata_is_ordered_and_round_trips() {
        let mut meta = BTreeMap::new();
        for key in ["zeta", "alpha", "mid"] {
            meta.insert(key.to_owned(), format!("value of {key}"));
        }
        let bytes = write(sample(), &meta);
        assert_eq!(bytes, write(sample(), &meta), "deterministic");
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        assert!(header.starts_with(r#"{"__metadata__":{"alpha":"value of alpha","mid""#));
        let file = TensorFile::parse(&bytes).unwrap();
        assert_eq!(file.metadata(), &meta);
        assert_eq!(file.bytes("z.payload").unwrap(), &[1, 2, 3]);
        assert_eq!(file.u16s("a.small", &[Some(2)]).unwrap(), [7, 8]);
        assert_eq!(
            file.u32s("m.table", &[None, Some(3)]).unwrap(),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(file.u64s("b.offsets", &[None]).unwrap(), [0, 3]);
        assert!(file.bytes("empty").unwrap().is_empty());
    }

    #[test]
    fn typed_access_reports_what_is_wrong() {
        let bytes = write(sample(), &BTreeMap::new());
        let file = TensorFile::parse(&bytes).unwrap();
        let err = file.u16s("z.payload", &[None]).unwrap_err();
        assert!(err.contains("dtype U8, expected U16"), "{err}");
        let err = file.u32s("m.table", &[None, Some(4)]).unwrap_err();
        assert!(err.contains("shape [2, 3], expected [*, 4]"), "{err}");
        let err = file.require_exactly(&["z.payload"]).unwrap_err();
        assert!(err.contains("unexpected tensor"), "{err}");
        let err = file.bytes("nope").unwrap_err();
        assert!(err.contains("`nope` is missing"), "{err}");
    }

    #[test]
    fn truncated_files_are_rejected() {
        let bytes = write(sample(), &BTreeMap::new());
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            assert!(TensorFile::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
