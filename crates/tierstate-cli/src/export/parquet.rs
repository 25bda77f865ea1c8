//! `export --format parquet` (feature `parquet`): each sheet is written as CSV under its
//! temporary name first, then rewritten as Parquet once every value is seen, so each column
//! gets the narrowest exact type: `TIMESTAMP(MICROS, UTC)` for times, `INT64` for integers,
//! `DECIMAL(38, s)` (16-byte two's complement) for decimals, `STRING` for the rest. Never a
//! float. The low-level writer of the `parquet` crate, without arrow.

use std::path::Path;
use std::sync::Arc;

use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::Kind;
use crate::error::{CliError, Result};

/// Rows per row group.
const ROWS_PER_GROUP: usize = 65_536;

/// How one column is stored.
#[derive(Debug, Clone, Copy)]
enum Column {
    Time,
    Int,
    Decimal(u32),
    Text,
}

impl Column {
    fn of(name: &str, kind: Kind) -> Self {
        match kind {
            _ if name == "time" => Self::Time,
            Kind::Number { int, scale: 0 } if int <= 18 => Self::Int,
            Kind::Number { int, scale } if int + scale <= 38 => Self::Decimal(scale),
            _ => Self::Text,
        }
    }

    fn field(self, name: &str) -> Result<Type> {
        let b = match self {
            Self::Time => Type::primitive_type_builder(name, Physical::INT64).with_logical_type(
                Some(LogicalType::Timestamp {
                    is_adjusted_to_u_t_c: true,
                    unit: TimeUnit::MICROS,
                }),
            ),
            Self::Int => Type::primitive_type_builder(name, Physical::INT64),
            Self::Decimal(scale) => {
                Type::primitive_type_builder(name, Physical::FIXED_LEN_BYTE_ARRAY)
                    .with_length(16)
                    .with_converted_type(ConvertedType::DECIMAL)
                    .with_precision(38)
                    .with_scale(i32::try_from(scale).unwrap_or(38))
            }
            Self::Text => Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
                .with_converted_type(ConvertedType::UTF8),
        };
        b.with_repetition(Repetition::OPTIONAL)
            .build()
            .map_err(|e| CliError::Other(format!("parquet schema of {name}: {e}")))
    }
}

/// Rewrites the CSV file `csv` (a header row, then rows) as the Parquet file `out`, each
/// column typed by what `kinds` saw in it.
pub(super) fn from_csv(
    csv: &Path,
    out: &Path,
    table: &str,
    kinds: &[(String, Kind)],
) -> Result<()> {
    let columns: Vec<Column> = kinds.iter().map(|(n, k)| Column::of(n, *k)).collect();
    let fields = kinds
        .iter()
        .zip(&columns)
        .map(|((n, _), c)| c.field(n).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let schema = Type::group_type_builder(table)
        .with_fields(fields)
        .build()
        .map_err(|e| CliError::Other(format!("parquet schema of {table}: {e}")))?;
    let file = std::fs::File::create(out).map_err(|e| CliError::io(out, e))?;
    let fail =
        |e: parquet::errors::ParquetError| CliError::Other(format!("{}: {e}", out.display()));
    let mut w = SerializedFileWriter::new(
        file,
        Arc::new(schema),
        Arc::new(WriterProperties::builder().build()),
    )
    .map_err(fail)?;
    let mut reader = csv::Reader::from_path(csv).map_err(|e| super::csv_error(csv, e))?;
    let mut rows = reader.records();
    loop {
        let mut group: Vec<csv::StringRecord> = Vec::with_capacity(ROWS_PER_GROUP);
        for r in rows.by_ref().take(ROWS_PER_GROUP) {
            group.push(r.map_err(|e| super::csv_error(csv, e))?);
        }
        if group.is_empty() {
            break;
        }
        let mut rg = w.next_row_group().map_err(fail)?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column().map_err(fail)? {
            let cells: Vec<&str> = group.iter().map(|r| r.get(i).unwrap_or("")).collect();
            write_column(col.untyped(), columns[i], &cells, &kinds[i].0).map_err(|e| match e {
                Cell::Parquet(e) => fail(e),
                Cell::Bad(msg) => CliError::Other(format!("{}: {msg}", out.display())),
            })?;
            col.close().map_err(fail)?;
            i += 1;
        }
        rg.close().map_err(fail)?;
    }
    w.close().map_err(fail)?;
    Ok(())
}

enum Cell {
    Parquet(parquet::errors::ParquetError),
    Bad(String),
}

impl From<parquet::errors::ParquetError> for Cell {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Self::Parquet(e)
    }
}

/// Writes one column of a row group: present cells with definition level 1, empty ones null.
fn write_column(
    w: &mut ColumnWriter<'_>,
    column: Column,
    cells: &[&str],
    name: &str,
) -> std::result::Result<(), Cell> {
    let defs: Vec<i16> = cells.iter().map(|c| i16::from(!c.is_empty())).collect();
    let present = cells.iter().filter(|c| !c.is_empty());
    let bad = |c: &str, what: &str| Cell::Bad(format!("column {name}: {c:?} is not {what}"));
    match (column, w) {
        (Column::Time, ColumnWriter::Int64ColumnWriter(w)) => {
            let v = present
                .map(|c| {
                    chrono::DateTime::parse_from_rfc3339(c)
                        .map(|t| t.timestamp_micros())
                        .map_err(|_| bad(c, "a time"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            w.write_batch(&v, Some(&defs), None)?;
        }
        (Column::Int, ColumnWriter::Int64ColumnWriter(w)) => {
            let v = present
                .map(|c| c.parse::<i64>().map_err(|_| bad(c, "an integer")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            w.write_batch(&v, Some(&defs), None)?;
        }
        (Column::Decimal(scale), ColumnWriter::FixedLenByteArrayColumnWriter(w)) => {
            let v = present
                .map(|c| {
                    unscaled(c, scale)
                        .map(|n| FixedLenByteArray::from(n.to_be_bytes().to_vec()))
                        .ok_or_else(|| bad(c, "a decimal that fits DECIMAL(38)"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            w.write_batch(&v, Some(&defs), None)?;
        }
        (Column::Text, ColumnWriter::ByteArrayColumnWriter(w)) => {
            let v: Vec<ByteArray> = present.map(|c| ByteArray::from(*c)).collect();
            w.write_batch(&v, Some(&defs), None)?;
        }
        _ => return Err(Cell::Bad(format!("column {name}: writer of another type"))),
    }
    Ok(())
}

/// The decimal text `s` as an integer count of `10^-scale` units, exactly: `None` if it has
/// more fraction digits than `scale` or does not fit 38 digits.
fn unscaled(s: &str, scale: u32) -> Option<i128> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac.len() > scale as usize {
        return None;
    }
    let mut text = String::with_capacity(int.len() + scale as usize);
    text.push_str(int);
    text.push_str(frac);
    text.extend(std::iter::repeat_n('0', scale as usize - frac.len()));
    let trimmed = text.trim_start_matches('0');
    if trimmed.len() > 38 {
        return None;
    }
    let n: i128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::unscaled;

    #[test]
    fn decimal_text_becomes_its_exact_unscaled_integer() {
        assert_eq!(unscaled("2500.25", 2), Some(250_025));
        assert_eq!(unscaled("-0.5", 3), Some(-500));
        assert_eq!(unscaled("7", 4), Some(70_000));
        assert_eq!(unscaled("0.000", 3), Some(0));
        assert_eq!(unscaled("1.234", 2), None, "never rounded");
        assert_eq!(unscaled("1e5", 0), None);
        assert_eq!(unscaled("", 0), None);
        let max = "9".repeat(38);
        assert_eq!(unscaled(&max, 0), Some(max.parse().unwrap()));
        assert_eq!(unscaled(&"9".repeat(39), 0), None);
    }
}
