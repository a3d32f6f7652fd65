//! Export: where finished records go (the output — stdout or `-o` — and the
//! exporters: files, syslog, OTLP, metrics), on the coordinator's async
//! runtime. A closed stdout (`| head`), a full disk or an unreachable
//! collector never stops tracing: what could not be written is counted and
//! reported as `lost`, and the traced program runs on.

use std::time::Duration;

use crate::{
    export::Exporters,
    output::Output,
    record::{Clock, Record},
};

pub struct Export {
    out: Output,
    pub exporters: Exporters,
    clock: Clock,
    /// Records the output could not take since it last worked.
    out_failed: u64,
    /// The output is gone for good (a closed pipe): not tried again.
    out_closed: bool,
    /// `lost` records made here, counted in the summary.
    pub lost: u64,
}

impl Export {
    pub fn new(out: Output, exporters: Exporters) -> Self {
        Self {
            out,
            exporters,
            clock: Clock::new(),
            out_failed: 0,
            out_closed: false,
            lost: 0,
        }
    }

    pub fn set_output(&mut self, out: Output) {
        self.out = out;
        self.out_closed = false;
    }

    /// One record to the output and every exporter.
    pub fn write(&mut self, record: &Record) {
        self.write_output(record);
        self.exporters.export(record);
    }

    /// Records to the output and every exporter, the output's share in one
    /// write.
    pub fn write_batch<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) {
        let mut rendered = 0u64;
        for record in records {
            self.exporters.export(record);
            if self.out_closed {
                self.out_failed += 1;
                continue;
            }
            match self.out.emit_buffered(record) {
                Ok(()) => rendered += 1,
                Err(err) => self.output_failed(1, &err),
            }
        }
        if rendered == 0 {
            return;
        }
        match self.out.flush() {
            Ok(()) => self.output_works(),
            Err(err) => self.output_failed(rendered, &err),
        }
    }

    fn write_output(&mut self, record: &Record) {
        if self.out_closed {
            self.out_failed += 1;
            return;
        }
        match self.out.emit(record) {
            Ok(()) => self.output_works(),
            Err(err) => self.output_failed(1, &err),
        }
    }

    /// A write went through: if earlier ones did not (space was freed),
    /// say what they missed.
    fn output_works(&mut self) {
        if self.out_failed > 0 {
            let count = std::mem::take(&mut self.out_failed);
            let lost = self.lost_record(count, "output could not be written".into(), "output");
            let _ = self.out.emit(&lost);
            self.exporters.export(&lost);
        }
    }

    /// `count` records could not be written.
    fn output_failed(&mut self, count: u64, err: &anyhow::Error) {
        let first = self.out_failed == 0;
        self.out_failed += count;
        let closed = err.chain().any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if closed {
            self.out_closed = true;
            log::warn!("output closed ({err:#}): tracing goes on, records are counted as lost");
        } else if first {
            log::warn!("{err:#}: records are counted as lost until it works again");
        }
    }

    /// A `lost` record for what an exporter or the output dropped.
    fn lost_record(&mut self, count: u64, reason: String, event: &'static str) -> Record {
        self.lost += count;
        Record::lost(&self.clock, count, reason, event)
    }

    /// Reports what exporters dropped since the last call.
    pub fn poll_drops(&mut self) {
        for (sink, count) in self.exporters.new_drops() {
            let record = self.lost_record(count, format!("not exported: {sink}"), "export");
            self.write(&record);
        }
    }

    /// Lets the exporters deliver what they hold (at most `limit`), then
    /// reports what they could not, and what the output could not take.
    pub async fn close(&mut self, limit: Duration) {
        self.poll_drops();
        let mut exporters = std::mem::take(&mut self.exporters);
        exporters.close(limit).await;
        for (sink, count) in exporters.new_drops() {
            let record = self.lost_record(count, format!("not exported: {sink}"), "export");
            self.write_output(&record);
        }
        if self.out_failed > 0 {
            let count = std::mem::take(&mut self.out_failed);
            self.lost += count;
            log::warn!("{count} records could not be written to the output");
        }
    }
}
