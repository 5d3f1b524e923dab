//! CTranslate2 `model.bin` (binary version 6), the format of faster-whisper models: a strict
//! reader (every length is checked against the file before it is used) and a writer, which the
//! tests use to make int8 and float32 sources.

use super::ModelError;
use std::collections::BTreeMap;
use std::path::Path;

pub const BINARY_VERSION: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    fn id(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::BF16 => 5,
        }
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub dims: Vec<usize>,
    pub dtype: DType,
    /// Little-endian element data, `dims.product() * dtype.size()` bytes.
    pub data: Vec<u8>,
}

impl Variable {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32, whatever the stored type.
    pub fn to_f32(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::I8 => d.iter().map(|&b| b as i8 as f32).collect(),
            DType::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Variable>,
    pub aliases: Vec<(String, String)>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    /// One variable: its name, shape, data type and data, checked against each other.
    fn variable(&mut self) -> Result<(String, Variable), ModelError> {
        let name = self.string("a variable name")?;
        let what = format!("variable '{name}'");
        let path = self.path;
        let bad = |detail: String| ModelError::invalid(path, format!("{what} {detail}"));
        let rank = self.u8(&what)? as usize;
        if rank > 8 {
            return Err(bad(format!("has rank {rank}")));
        }
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(self.u32(&what)? as usize);
        }
        let dtype_id = self.u8(&what)?;
        let dtype = DType::from_id(dtype_id)
            .ok_or_else(|| bad(format!("has unknown data type {dtype_id}")))?;
        let nbytes = self.u32(&what)? as usize;
        let expected = dims
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if expected != Some(nbytes) {
            return Err(bad(format!(
                "declares {nbytes} bytes for shape {dims:?} of {dtype:?}"
            )));
        }
        let data = self.take(nbytes, &what)?.to_vec();
        Ok((name, Variable { dims, dtype, data }))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        if self.data.len() - self.pos < n {
            return Err(ModelError::invalid(
                self.path,
                format!(
                    "model.bin is truncated in {what} (at byte {} of {})",
                    self.pos,
                    self.data.len()
                ),
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ModelError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let n = self.u16(what)? as usize;
        let bytes = self.take(n, what)?;
        let trimmed = bytes.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8(trimmed.to_vec())
            .map_err(|_| ModelError::invalid(self.path, format!("{what} is not UTF-8")))
    }
}

impl Model {
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let data = std::fs::read(path).map_err(|e| ModelError::io(path, &e))?;
        Self::parse(&data, path)
    }

    /// Parses a whole `model.bin`; `path` only names the file in errors.
    pub fn parse(data: &[u8], path: &Path) -> Result<Self, ModelError> {
        if data.is_empty() {
            return Err(ModelError::invalid(path, "model.bin is empty"));
        }
        let mut c = Cursor { data, pos: 0, path };
        let version = c.u32("the header")?;
        if version != BINARY_VERSION {
            return Err(ModelError::invalid(
                path,
                format!(
                    "not a CTranslate2 model.bin of binary version {BINARY_VERSION} (found {version})"
                ),
            ));
        }
        let spec = c.string("the spec name")?;
        let revision = c.u32("the header")?;
        let count = c.u32("the header")? as usize;
        if count > 100_000 {
            return Err(ModelError::invalid(
                path,
                format!("absurd variable count {count}"),
            ));
        }
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let (name, variable) = c.variable()?;
            variables.insert(name, variable);
        }
        let n_aliases = c.u32("the alias table")? as usize;
        if n_aliases > 100_000 {
            return Err(ModelError::invalid(
                path,
                format!("absurd alias count {n_aliases}"),
            ));
        }
        let mut aliases = Vec::with_capacity(n_aliases);
        for _ in 0..n_aliases {
            aliases.push((c.string("the alias table")?, c.string("the alias table")?));
        }
        if c.pos != data.len() {
            return Err(ModelError::invalid(
                path,
                format!(
                    "{} unexpected bytes after the alias table",
                    data.len() - c.pos
                ),
            ));
        }
        Ok(Model {
            spec,
            revision,
            variables,
            aliases,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&BINARY_VERSION.to_le_bytes());
        string(&mut out, &self.spec);
        out.extend_from_slice(&self.revision.to_le_bytes());
        out.extend_from_slice(&(self.variables.len() as u32).to_le_bytes());
        for (name, v) in &self.variables {
            string(&mut out, name);
            out.push(v.dims.len() as u8);
            for d in &v.dims {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(v.dtype.id());
            out.extend_from_slice(&(v.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&v.data);
        }
        out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (a, b) in &self.aliases {
            string(&mut out, a);
            string(&mut out, b);
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.variables.get(name)
    }

    /// A weight as f32: int8 weights are scaled back per output row (`w = q / scale`) with the
    /// `<name>_scale` variable beside them.
    pub fn weight_f32(&self, name: &str, path: &Path) -> Result<Vec<f32>, ModelError> {
        let v = self.get(name).ok_or_else(|| {
            ModelError::invalid(path, format!("model.bin has no variable '{name}'"))
        })?;
        let mut values = v.to_f32();
        if v.dtype == DType::I8 {
            let scale_name = format!("{name}_scale");
            let scale = self.get(&scale_name).ok_or_else(|| {
                ModelError::invalid(
                    path,
                    format!("int8 variable '{name}' has no '{scale_name}'"),
                )
            })?;
            let rows = v.dims.first().copied().unwrap_or(1);
            let scales = scale.to_f32();
            if scales.len() != rows || rows == 0 {
                return Err(ModelError::invalid(
                    path,
                    format!("'{scale_name}' has {} values for {rows} rows", scales.len()),
                ));
            }
            // A zero dimension after the first leaves rows of no values: nothing to scale.
            let cols = values.len() / rows;
            if cols > 0 {
                for (row, s) in values.chunks_mut(cols).zip(scales) {
                    row.iter_mut().for_each(|w| *w /= s);
                }
            }
        }
        Ok(values)
    }

    /// An integer option stored as a scalar (such as `encoder/num_heads`).
    pub fn scalar(&self, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        (v.dims.is_empty()).then(|| v.to_f32().first().map(|&x| x as i64))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(dims: Vec<usize>, dtype: DType, data: Vec<u8>) -> Variable {
        Variable { dims, dtype, data }
    }

    fn model(variables: Vec<(&str, Variable)>) -> Model {
        Model {
            spec: "WhisperSpec".into(),
            revision: 3,
            variables: variables
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
            aliases: Vec::new(),
        }
    }

    #[test]
    fn int8_weights_are_scaled_back_per_row() {
        let path = Path::new("model.bin");
        let m = model(vec![
            ("w", variable(vec![2, 2], DType::I8, vec![2, 4, 0xfa, 8])),
            (
                "w_scale",
                variable(
                    vec![2],
                    DType::F32,
                    [2f32, 4f32].iter().flat_map(|f| f.to_le_bytes()).collect(),
                ),
            ),
        ]);
        assert_eq!(m.weight_f32("w", path), Ok(vec![1.0, 2.0, -1.5, 2.0]));
    }

    /// Found by the ct2_model fuzz target: an int8 weight of shape [2, 0] with two scales made
    /// `chunks_mut(0)` panic.
    #[test]
    fn an_int8_weight_with_a_zero_dimension_is_empty_not_a_panic() {
        let path = Path::new("model.bin");
        let m = model(vec![
            ("w", variable(vec![2, 0], DType::I8, Vec::new())),
            ("w_scale", variable(vec![2], DType::F32, vec![0; 8])),
        ]);
        assert_eq!(m.weight_f32("w", path), Ok(Vec::new()));
        let bytes = m.to_bytes();
        assert_eq!(Model::parse(&bytes, path).as_ref(), Ok(&m));
    }
}
