//! Panic values as the Go runtime prints them (`printpanicval`, and the
//! `Error()` methods of the runtime's and the standard library's common
//! error types), from the bytes captured at `runtime.gopanic`.

/// What the probe captured about one `any` value.
pub struct Captured<'a> {
    /// Type name from the binary's type metadata ("string", "runtime.boundsError").
    pub type_name: Option<&'a str>,
    /// `Kind_ & 0x1f` of the type.
    pub kind: Option<u8>,
    /// Bytes at `data`.
    pub value: &'a [u8],
    /// String whose header starts `value` (string values, errors.errorString …).
    pub string: &'a [u8],
    /// The length that header claimed.
    pub string_full_len: u64,
    /// Resolves a type descriptor address found inside the value to its name.
    pub type_name_at: &'a dyn Fn(u64) -> Option<String>,
    /// The binary's Go minor version (19 for go1.19.8), where messages
    /// differ between versions.
    pub go_minor: Option<u32>,
}

const KIND_BOOL: u8 = 1;
const KIND_INT: u8 = 2;
const KIND_INT64: u8 = 6;
const KIND_UINT: u8 = 7;
const KIND_UINTPTR: u8 = 12;
const KIND_STRING: u8 = 24;

impl Captured<'_> {
    fn word(&self, i: usize) -> Option<u64> {
        Some(u64::from_le_bytes(
            self.value.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    }

    fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(self.string).into_owned();
        if self.string_full_len > self.string.len() as u64 {
            s.push('…');
        }
        s
    }
}

/// The message Go prints after `panic: `, or `None` when it cannot be known
/// without running the value's methods (then callers show the type).
pub fn message(v: &Captured<'_>) -> Option<String> {
    let name = v.type_name?;
    match name {
        "string" => Some(v.text()),
        // Named strings whose Error() is the string itself (or prefixed).
        "runtime.plainError" => Some(v.text()),
        "runtime.errorString" => Some(format!("runtime error: {}", v.text())),
        // A fault with debug.SetPanicOnFault: {msg string, addr uintptr}.
        "runtime.errorAddressString" => Some(format!("runtime error: {}", v.text())),
        // panic(nil) since Go 1.21 (no fields; a constant Error(), which
        // Go 1.27 prefixed like the other runtime errors).
        "*runtime.PanicNilError" if v.go_minor.is_some_and(|m| m >= 27) => {
            Some("runtime error: panic called with nil argument".to_owned())
        }
        "*runtime.PanicNilError" => Some("panic called with nil argument".to_owned()),
        "*errors.errorString" | "*fmt.wrapError" | "*fmt.wrapErrors" => Some(v.text()),
        "runtime.boundsError" => bounds_error(v),
        "*runtime.TypeAssertionError" => type_assertion_error(v),
        _ => basic(v, name),
    }
}

/// `runtime.boundsError{x int64, y int, signed bool, code uint8}`.
fn bounds_error(v: &Captured<'_>) -> Option<String> {
    let x = v.word(0)? as i64;
    let y = v.word(1)? as i64;
    let signed = *v.value.get(16)? != 0;
    let code = *v.value.get(17)?;
    const FMT: [&str; 9] = [
        "index out of range [%x] with length %y",
        "slice bounds out of range [:%x] with length %y",
        "slice bounds out of range [:%x] with capacity %y",
        "slice bounds out of range [%x:%y]",
        "slice bounds out of range [::%x] with length %y",
        "slice bounds out of range [::%x] with capacity %y",
        "slice bounds out of range [:%x:%y]",
        "slice bounds out of range [%x:%y:]",
        "cannot convert slice with length %y to array or pointer to array with length %x",
    ];
    const NEG_FMT: [&str; 9] = [
        "index out of range [%x]",
        "slice bounds out of range [:%x]",
        "slice bounds out of range [:%x]",
        "slice bounds out of range [%x:]",
        "slice bounds out of range [::%x]",
        "slice bounds out of range [::%x]",
        "slice bounds out of range [:%x:]",
        "slice bounds out of range [%x::]",
        "cannot convert slice with length %y to array or pointer to array with length %x",
    ];
    // Go 1.19's boundsConvert (runtime/error.go), before slices converted
    // to arrays too (Go 1.20).
    const CONVERT_GO119: &str =
        "cannot convert slice with length %y to pointer to array with length %x";
    const CONVERT: u8 = 8;
    let table = if signed && x < 0 { &NEG_FMT } else { &FMT };
    let fmt = match table.get(usize::from(code))? {
        _ if code == CONVERT && v.go_minor.is_some_and(|m| m < 20) => CONVERT_GO119,
        f => f,
    };
    let xs = if signed {
        x.to_string()
    } else {
        (x as u64).to_string()
    };
    Some(format!(
        "runtime error: {}",
        fmt.replace("%x", &xs).replace("%y", &y.to_string())
    ))
}

/// `*runtime.TypeAssertionError{_interface, concrete, asserted *_type, missingMethod string}`.
fn type_assertion_error(v: &Captured<'_>) -> Option<String> {
    let inter = match v.word(0)? {
        0 => "interface".to_owned(),
        t => (v.type_name_at)(t)?,
    };
    let asserted = (v.type_name_at)(v.word(2)?)?;
    let concrete = match v.word(1)? {
        0 => {
            return Some(format!(
                "interface conversion: {inter} is nil, not {asserted}"
            ));
        }
        t => (v.type_name_at)(t)?,
    };
    let missing_len = v.word(4)?;
    if missing_len == 0 {
        return Some(format!(
            "interface conversion: {inter} is {concrete}, not {asserted}"
        ));
    }
    None // the method name is behind one more pointer we did not capture
}

/// printpanicval for basic kinds: `panic(42)` prints "42"; a named basic
/// type prints `main.T(42)`, a named string `main.S("text")`
/// (printanycustomtype, the same in Go 1.19–1.27). Other types are printed
/// by their Error()/String() method or as "(T) 0xADDR", which needs the
/// method set: unknown here.
fn basic(v: &Captured<'_>, name: &str) -> Option<String> {
    let kind = v.kind?;
    let value = match kind {
        KIND_BOOL => (v.value.first()? != &0).to_string(),
        KIND_INT..=KIND_INT64 => {
            let w = v.word(0)?;
            let bits = [0, 64, 8, 16, 32, 64][usize::from(kind - 1)];
            sign_extend(w, bits).to_string()
        }
        KIND_UINT..=KIND_UINTPTR => {
            let w = v.word(0)?;
            let bits = [64, 8, 16, 32, 64, 64][usize::from(kind - KIND_UINT)];
            (if bits == 64 { w } else { w & ((1 << bits) - 1) }).to_string()
        }
        KIND_STRING => format!("\"{}\"", v.text()),
        _ => return None,
    };
    let builtin = matches!(
        name,
        "bool"
            | "int"
            | "int8"
            | "int16"
            | "int32"
            | "int64"
            | "uint"
            | "uint8"
            | "uint16"
            | "uint32"
            | "uint64"
            | "uintptr"
    );
    Some(if builtin {
        value
    } else {
        format!("{name}({value})")
    })
}

fn sign_extend(w: u64, bits: u32) -> i64 {
    if bits >= 64 {
        return w as i64;
    }
    let shift = 64 - bits;
    ((w << shift) as i64) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap<'a>(name: &'a str, kind: u8, value: &'a [u8], string: &'a [u8]) -> Captured<'a> {
        Captured {
            type_name: Some(name),
            kind: Some(kind),
            value,
            string,
            string_full_len: string.len() as u64,
            type_name_at: &|t| Some(format!("T{t}")),
            go_minor: Some(21),
        }
    }

    fn words(ws: &[u64]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn strings_and_errors() {
        assert_eq!(message(&cap("string", 24, &[], b"boom")).unwrap(), "boom");
        assert_eq!(
            message(&cap(
                "runtime.errorString",
                24,
                &[],
                b"integer divide by zero"
            ))
            .unwrap(),
            "runtime error: integer divide by zero"
        );
        assert_eq!(
            message(&cap(
                "runtime.plainError",
                24,
                &[],
                b"assignment to entry in nil map"
            ))
            .unwrap(),
            "assignment to entry in nil map"
        );
        assert_eq!(
            message(&cap("*errors.errorString", 22, &[], b"x")).unwrap(),
            "x"
        );
    }

    #[test]
    fn bounds() {
        let mut v = words(&[5, 3]);
        v.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            message(&cap("runtime.boundsError", 25, &v, b"")).unwrap(),
            "runtime error: index out of range [5] with length 3"
        );
        let mut v = words(&[(-1i64) as u64, 3]);
        v.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            message(&cap("runtime.boundsError", 25, &v, b"")).unwrap(),
            "runtime error: index out of range [-1]"
        );
        let mut v = words(&[1, 4]);
        v.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            message(&cap("runtime.boundsError", 25, &v, b"")).unwrap(),
            "runtime error: slice bounds out of range [1:4]"
        );
        // (*[4]int)(s) with len(s) == 2: x is the array's length, y the slice's.
        let mut v = words(&[4, 2]);
        v.extend_from_slice(&[0, 8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            message(&cap("runtime.boundsError", 25, &v, b"")).unwrap(),
            "runtime error: cannot convert slice with length 2 to array or pointer to array with length 4"
        );
        let go119 = Captured {
            go_minor: Some(19),
            ..cap("runtime.boundsError", 25, &v, b"")
        };
        assert_eq!(
            message(&go119).unwrap(),
            "runtime error: cannot convert slice with length 2 to pointer to array with length 4"
        );
    }

    #[test]
    fn type_assertion() {
        let v = words(&[0, 7, 9, 0, 0]);
        assert_eq!(
            message(&cap("*runtime.TypeAssertionError", 22, &v, b"")).unwrap(),
            "interface conversion: interface is T7, not T9"
        );
    }

    #[test]
    fn basic_kinds() {
        assert_eq!(message(&cap("int", 2, &words(&[42]), b"")).unwrap(), "42");
        assert_eq!(
            message(&cap("int8", 3, &words(&[0xff]), b"")).unwrap(),
            "-1"
        );
        assert_eq!(
            message(&cap("main.Code", 2, &words(&[7]), b"")).unwrap(),
            "main.Code(7)"
        );
        assert_eq!(
            message(&cap("main.Name", 24, &[], b"a\"b")).unwrap(),
            "main.Name(\"a\"b\")"
        );
        assert!(message(&cap("main.S", 25, &words(&[7]), b"")).is_none());
    }
}
