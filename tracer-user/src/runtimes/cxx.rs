//! C++: exceptions as libstdc++ throws them (`__cxa_throw`) and rethrows
//! them (`std::rethrow_exception`, `throw;`), and the `std::terminate`
//! that follows an uncaught one.

use super::{Procs, Stacks, kernel_record, native};
use crate::{
    incident::Correlator,
    probes::kernel::KernelProbes,
    record::{Body, Clock, Exception, Record},
    symbolize::process::ProcessImage,
};

/// Process side: the throw and terminate probes on the process's
/// libstdc++, if it maps one.
pub fn place_probes(probes: &mut KernelProbes, pid: u32, image: &ProcessImage) {
    if let Some(lib) = image.libstdcxx()
        && let Err(err) = probes.follow_cxx(pid, &lib)
        && crate::procfs::comm(pid).is_some()
    {
        log::warn!("pid {pid}: C++ exceptions not traced: {err:#}");
    }
}

/// The mangled names of the thrown type and its bases, as far as they
/// read. A name the BPF side could not read (on a page the process never
/// touched: it cannot fault one in) is read by `read_static_str` from the
/// file at the address it was at.
fn thrown_types(
    r: &tracer_common::CxxRecord,
    read_static_str: impl Fn(u64) -> Option<Vec<u8>>,
) -> Vec<String> {
    r.types
        .iter()
        .zip(r.type_names)
        .map(|(t, at)| {
            let end = t.iter().position(|&b| b == 0).unwrap_or(t.len());
            match &t[..end] {
                [] if at != 0 => read_static_str(at)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
                name => String::from_utf8_lossy(name).into_owned(),
            }
        })
        .take_while(|n| !n.is_empty())
        .collect()
}

/// Analysis side: a throw or rethrow becomes an `exception` record with
/// the throwing stack; a terminate tells the correlator the thread's last throw was
/// not caught.
pub fn on_record(
    r: &tracer_common::CxxRecord,
    procs: &mut Procs,
    stacks: &mut Stacks,
    correlator: &mut Correlator,
    clock: &Clock,
) -> Option<Record> {
    let pid = r.header.pid;
    let tid = r.header.tid;
    if r.probe == tracer_common::CXX_TERMINATE {
        if let Some(p) = procs.get_mut(pid) {
            p.terminating.insert(tid);
        }
        correlator.uncaught(pid, tid);
        return None;
    }
    if r.probe == tracer_common::CXX_RETHROW
        && procs.get(pid).is_some_and(|p| p.terminating.contains(&tid))
    {
        return None;
    }
    let (frames, cut) = native::probe_stack(procs, stacks, pid, r.header.tid, &r.regs);
    let image = procs.image(pid);
    let names = thrown_types(r, |at| {
        image.and_then(|i| i.read_static_str(at, tracer_common::CXX_NAME_BYTES - 1))
    });
    let value_type = names.first().map(|n| demangle_type(n));
    // std::runtime_error and std::logic_error keep their message in a
    // string right after the vtable pointer: what() returns it.
    let readable = names
        .iter()
        .any(|n| n == "St13runtime_error" || n == "St11logic_error");
    let what_len = (r.what_len as usize).min(r.what.len());
    let constant = names.first().and_then(|n| libstdcxx_constant_what(n));
    let (message, message_unavailable) = if readable {
        (
            Some(String::from_utf8_lossy(&r.what[..what_len]).into_owned()),
            None,
        )
    } else if let Some(what) = constant {
        (Some(what.to_owned()), None)
    } else {
        (
            None,
            Some(format!(
                "what() of {} cannot be read without calling it",
                value_type.as_deref().unwrap_or("this type")
            )),
        )
    };
    Some(kernel_record(
        clock,
        &r.header,
        procs.image(pid).and_then(|i| i.exe.clone()),
        None,
        Body::Exception(Exception {
            language: "c++",
            message,
            message_unavailable,
            value_type,
            location: None,
            frames,
            frames_truncated: cut.is_some(),
            truncated_by: cut.map(|c| c.to_string()),
            suppressed: r.suppressed,
            thread_name: None,
            rethrown_by: match r.probe {
                tracer_common::CXX_RETHROW_EXCEPTION => Some("std::rethrow_exception".to_owned()),
                tracer_common::CXX_RETHROW => Some("throw;".to_owned()),
                _ => None,
            },
            thrown_by_tid: None,
            object: r.object,
        }),
    ))
}

/// What libstdc++'s stateless exception classes return from what(): a
/// constant per class, so no call is needed (only for the exact type: a
/// subclass may override it).
fn libstdcxx_constant_what(mangled: &str) -> Option<&'static str> {
    Some(match mangled {
        "St9bad_alloc" => "std::bad_alloc",
        "St20bad_array_new_length" => "std::bad_array_new_length",
        "St8bad_cast" => "std::bad_cast",
        "St10bad_typeid" => "std::bad_typeid",
        "St13bad_exception" => "std::bad_exception",
        "St9exception" => "std::exception",
        "St17bad_function_call" => "bad_function_call",
        "St12bad_weak_ptr" => "bad_weak_ptr",
        "St19bad_optional_access" => "bad optional access",
        _ => return None,
    })
}

/// A C++ type as `type_info::name()` spells it (mangled, without `_Z`),
/// demangled: "St13runtime_error" → "std::runtime_error".
fn demangle_type(mangled: &str) -> String {
    let full = format!("_ZTS{mangled}");
    let text = addr2line::demangle_auto(full.as_str().into(), None);
    text.strip_prefix("typeinfo name for ")
        .map(str::to_owned)
        .unwrap_or_else(|| mangled.to_owned())
}

#[cfg(test)]
mod thrown_type_tests {
    use super::*;

    #[test]
    fn type_names_the_bpf_side_could_not_read_come_from_the_file() {
        // SAFETY: CxxRecord is plain data; all-zero is a valid value.
        let mut r: tracer_common::CxxRecord = unsafe { std::mem::zeroed() };
        r.types[0][..20].copy_from_slice(b"St16invalid_argument");
        // The base's name was on an untouched page; the next has no name.
        r.type_names = [0x7f00_0000_1000, 0x7f00_0000_2000, 0, 0];
        let file = |at: u64| (at == 0x7f00_0000_2000).then(|| b"St11logic_error".to_vec());
        assert_eq!(
            thrown_types(&r, file),
            ["St16invalid_argument", "St11logic_error"]
        );
        assert_eq!(thrown_types(&r, |_| None), ["St16invalid_argument"]);
    }
}
