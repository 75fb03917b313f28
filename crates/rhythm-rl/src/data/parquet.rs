//! Parquet rows as JSON objects, read one row group at a time.
//!
//! The file's footer is read first (a file that is not parquet, or is cut
//! short, fails there with the reader's message); rows are then decoded
//! lazily by the `parquet` crate's record reader, which holds one row group
//! at a time, so a large file is never loaded whole. Each row becomes a JSON
//! object: strings, numbers, booleans and nulls as themselves, lists as
//! arrays, structs and maps as objects. Binary columns are refused rather
//! than guessed at: a `prompt` stored as bytes is a one-line error naming
//! the row and the column.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Number, Value};

use super::RowError;

/// The rows of a parquet file, in order; an error ends the iteration.
pub struct ParquetRows {
    iter: parquet::record::reader::RowIter<'static>,
    /// Rows produced so far.
    pub index: usize,
}

/// Opens `path` and reads its footer.
pub fn open(path: &Path) -> Result<(ParquetRows, usize), String> {
    let file = File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let reader =
        SerializedFileReader::new(file).map_err(|e| format!("not a readable parquet file: {e}"))?;
    let total = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    let iter = parquet::record::reader::RowIter::from_file_into(Box::new(reader));
    Ok((ParquetRows { iter, index: 0 }, total))
}

impl Iterator for ParquetRows {
    type Item = Result<Map<String, Value>, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = self.iter.next()?;
        self.index += 1;
        Some(match row {
            Ok(row) => row_to_object(&row).map_err(RowError::Field),
            Err(e) => Err(RowError::Fatal(format!(
                "cannot decode: {}",
                e.to_string().replace('\n', " ")
            ))),
        })
    }
}

fn row_to_object(row: &Row) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, field) in row.get_column_iter() {
        let value = field_to_json(field).map_err(|what| format!("column \"{name}\": {what}"))?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn field_to_json(field: &Field) -> Result<Value, String> {
    let float = |f: f64| {
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("a non-finite number ({f})"))
    };
    Ok(match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(n) => Value::from(*n),
        Field::Short(n) => Value::from(*n),
        Field::Int(n) => Value::from(*n),
        Field::Long(n) => Value::from(*n),
        Field::UByte(n) => Value::from(*n),
        Field::UShort(n) => Value::from(*n),
        Field::UInt(n) => Value::from(*n),
        Field::ULong(n) => Value::from(*n),
        Field::Float16(n) => float(f64::from(*n))?,
        Field::Float(n) => float(f64::from(*n))?,
        Field::Double(n) => float(*n)?,
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(_) => {
            return Err("binary data, expected text (a string column)".into());
        }
        Field::Decimal(_)
        | Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => Value::String(field.to_string()),
        Field::Group(row) => Value::Object(row_to_object(row)?),
        Field::ListInternal(list) => Value::Array(
            list.elements()
                .iter()
                .map(field_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Field::MapInternal(map) => {
            let mut out = Map::new();
            for (k, v) in map.entries() {
                let key = match k {
                    Field::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(key, field_to_json(v)?);
            }
            Value::Object(out)
        }
    })
}
