//! maglevt: the out-of-band VIP monitor for failover drills.
//!
//! Thin: flags and config, the probe loops on a background runtime, and
//! the screen on the main thread, so neither ever waits for the other.

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maglev_monitor::args::Flags;
use maglev_monitor::targets::targets;
use maglev_monitor::{host, render, Monitor, Theme, Ui};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::DefaultTerminal;

/// Redraws per second when nothing is pressed.
const FRAME: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let flags = match Flags::parse_args() {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let mut configs = Vec::new();
    for path in &flags.config {
        match maglev_config::load_file(path) {
            Ok(loaded) => configs.push(loaded.config),
            Err(e) => {
                eprintln!("maglevt: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let (targets, skipped) = targets(&configs, flags.filter.as_ref(), flags.kind_choice());
    let skipped: Vec<String> = skipped
        .iter()
        .map(|s| format!("maglevt: not probing {}: {}", s.name, s.why))
        .collect();
    if targets.is_empty() {
        skipped.iter().for_each(|s| eprintln!("{s}"));
        eprintln!("maglevt: no VIPs to probe");
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maglevt: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let host = rt.block_on(host::fqdn(Duration::from_secs(1)));
    let monitor = {
        let _in_rt = rt.enter();
        Monitor::start(targets, flags.interval, flags.probe_options())
    };
    let quit = Arc::new(AtomicBool::new(false));
    rt.spawn(stop_on_signal(Arc::clone(&quit)));

    let theme = Theme {
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    // Raw mode and the alternate screen; ratatui's panic hook puts the
    // terminal back before a panic message prints.
    let mut terminal = ratatui::init();
    let result = screen(&mut terminal, &monitor, &host, &flags, theme, &quit);
    ratatui::restore();
    skipped.iter().for_each(|s| eprintln!("{s}"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maglevt: terminal: {e}");
            ExitCode::from(1)
        }
    }
}

async fn stop_on_signal(quit: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = hup.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    quit.store(true, Ordering::Relaxed);
    // The screen notices within a frame. Should it be stuck on a terminal
    // that has gone away, leave anyway rather than linger.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ratatui::restore();
    std::process::exit(0);
}

/// Waits up to `timeout` for a key. An error when the terminal has hung
/// up: crossterm would read end-of-file forever instead.
fn key_waiting(timeout: Duration) -> io::Result<bool> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        // crossterm reads keys from /dev/tty then; stdin tells nothing.
        return event::poll(timeout);
    }
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) | Err(Errno::EINTR) => Ok(false),
        Ok(_) => {
            let hung_up = fds[0].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            });
            if hung_up {
                Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the terminal has gone away",
                ))
            } else {
                Ok(true)
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn screen(
    terminal: &mut DefaultTerminal,
    monitor: &Monitor,
    host: &str,
    flags: &Flags,
    theme: Theme,
    quit: &AtomicBool,
) -> io::Result<()> {
    let started = Instant::now();
    let mut ui = Ui::default();
    let header_name = flags.header.clone();
    while !quit.load(Ordering::Relaxed) {
        let view = monitor.view(host, started.elapsed());
        let mut page = 10usize;
        terminal.draw(|f| {
            page = usize::from(f.area().height / 2).max(1);
            render(f, &view, &mut ui, theme, &header_name);
        })?;
        if !key_waiting(FRAME)? || !event::poll(Duration::ZERO)? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => break,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => break,
            KeyCode::Char('p') => monitor.set_paused(!monitor.paused()),
            KeyCode::Char('r') => monitor.model().reset(),
            KeyCode::Up => ui.vip_offset = ui.vip_offset.saturating_sub(1),
            KeyCode::Down => ui.vip_offset += 1,
            KeyCode::PageUp => ui.error_offset = ui.error_offset.saturating_sub(page),
            KeyCode::PageDown => ui.error_offset += page,
            KeyCode::Home => ui = Ui::default(),
            KeyCode::End => ui.error_offset = usize::MAX,
            _ => {}
        }
    }
    Ok(())
}
