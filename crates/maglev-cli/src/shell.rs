//! The interactive shell: a line editor with history, Tab completion of
//! keywords and live names, and `?` help in the style of BIRD's birdc.
//!
//! The shell is synchronous (the line editor blocks on the terminal) and
//! drives the async client through `block_on` on a current-thread runtime,
//! so it must not itself be called from inside that runtime.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use maglev_proto::maglev_client::MaglevClient;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Context, Editor, Event, EventContext,
    EventHandler, ExternalPrinter, Helper, KeyEvent, RepeatCount,
};
use tokio::runtime::Runtime;
use tonic::transport::Channel;

use crate::events::watch_command;
use crate::names::fetch_from;
use crate::render::Style;
use crate::run::{connect, local, run, CliError};
use crate::term::until_interrupted;
use crate::tree::{complete, help, resolve, Command, Names, NoNames, ResolveError, Slot};

/// The prompt.
pub const PROMPT: &str = "maglev> ";

/// How long completion waits for live names before offering none.
const NAMES_TIMEOUT: Duration = Duration::from_secs(1);

/// What the shell needs.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    /// maglevd's address.
    pub server: crate::run::Server,
    /// Colour.
    pub style: Style,
    /// Print JSON instead of text.
    pub json: bool,
    /// Where history persists; `None` keeps it for this session only.
    pub history: Option<PathBuf>,
}

/// The shell failed to start or to read the terminal.
#[derive(Debug, thiserror::Error)]
#[error("maglevc shell: {0}")]
pub struct ShellError(#[from] ReadlineError);

/// The maglevd connection, made on first use so the shell starts (and
/// says so) while maglevd is down; tonic reconnects it afterwards.
struct Link<'a> {
    rt: &'a Runtime,
    server: crate::run::Server,
    client: RefCell<Option<MaglevClient<Channel>>>,
}

impl Link<'_> {
    fn client(&self) -> Result<MaglevClient<Channel>, CliError> {
        if let Some(c) = self.client.borrow().as_ref() {
            return Ok(c.clone());
        }
        let c = self.rt.block_on(connect(&self.server))?;
        *self.client.borrow_mut() = Some(c.clone());
        Ok(c)
    }
}

impl Names for Link<'_> {
    fn names(&self, slot: Slot, frontend: Option<&str>) -> Vec<String> {
        let live = matches!(
            slot,
            Slot::Frontend | Slot::Backend | Slot::HealthCheck | Slot::Pool
        );
        if !live {
            return NoNames.names(slot, frontend);
        }
        let Ok(mut c) = self.client() else {
            return Vec::new();
        };
        // The timer is made inside block_on: it needs the runtime.
        self.rt
            .block_on(async { tokio::time::timeout(NAMES_TIMEOUT, fetch_from(&mut c)).await })
            .unwrap_or_default()
            .names(slot, frontend)
    }
}

/// Splits the text before the cursor into the finished words and the word
/// being typed (empty after a space).
fn split_at_cursor(before: &str) -> (Vec<&str>, &str) {
    let mut words: Vec<&str> = before.split_whitespace().collect();
    let partial = if before.is_empty() || before.ends_with(char::is_whitespace) {
        ""
    } else {
        words.pop().unwrap_or("")
    };
    (words, partial)
}

/// The `?` listing for the text before the cursor: what may follow, or,
/// inside a word, what that word may become.
pub fn question_mark(before: &str) -> String {
    let (words, partial) = split_at_cursor(before);
    match help(&words) {
        Ok(list) => {
            let list: Vec<&(String, String)> = list
                .iter()
                .filter(|(w, _)| w.starts_with('<') || w.starts_with(partial))
                .collect();
            if list.is_empty() {
                return format!("  no command continues with {partial:?}\n");
            }
            let width = list.iter().map(|(w, _)| w.len()).max().unwrap_or(0);
            list.iter()
                .map(|(w, h)| format!("  {w:<width$}  {h}\n"))
                .collect()
        }
        Err(e) => format!("  {e}\n"),
    }
}

struct ShellHelper<'a> {
    link: Link<'a>,
}

impl Completer for ShellHelper<'_> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (words, partial) = split_at_cursor(&line[..pos]);
        let found = complete(&words, partial, &self.link);
        let pairs = found
            .into_iter()
            .map(|w| Pair {
                display: w.clone(),
                replacement: format!("{w} "),
            })
            .collect();
        Ok((pos - partial.len(), pairs))
    }
}

impl Hinter for ShellHelper<'_> {
    type Hint = String;
}

impl Highlighter for ShellHelper<'_> {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper<'_> {}

impl Helper for ShellHelper<'_> {}

/// `?`: prints the line with the `?` and the listing above a fresh prompt,
/// leaving the line and cursor as they were.
struct QuestionMark {
    printer: Mutex<Box<dyn ExternalPrinter + Send>>,
}

impl ConditionalEventHandler for QuestionMark {
    fn handle(
        &self,
        _evt: &Event,
        _n: RepeatCount,
        _positive: bool,
        ctx: &EventContext<'_>,
    ) -> Option<Cmd> {
        let line = ctx.line();
        let pos = ctx.pos();
        let msg = format!(
            "{PROMPT}{}?{}\n{}",
            &line[..pos],
            &line[pos..],
            question_mark(&line[..pos])
        );
        if let Ok(mut p) = self.printer.lock() {
            let _ = p.print(msg);
        }
        Some(Cmd::Noop)
    }
}

/// Runs the shell until `quit`, `exit` or Ctrl-D (end of input). Returns
/// the exit code: 0 for a terminal; with commands piped in, that of the
/// last failed command (1 server, 2 usage), so a script notices.
pub fn shell(rt: &Runtime, opts: &ShellOptions) -> Result<u8, ShellError> {
    let scripted = !std::io::stdin().is_terminal();
    let mut failed = 0u8;
    let config = Config::builder()
        .max_history_size(1000)?
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut rl: Editor<ShellHelper<'_>, DefaultHistory> = Editor::with_config(config)?;
    rl.set_helper(Some(ShellHelper {
        link: Link {
            rt,
            server: opts.server.clone(),
            client: RefCell::new(None),
        },
    }));
    if let Ok(printer) = rl.create_external_printer() {
        rl.bind_sequence(
            KeyEvent::from('?'),
            EventHandler::Conditional(Box::new(QuestionMark {
                printer: Mutex::new(Box::new(printer)),
            })),
        );
    }
    if let Some(path) = &opts.history {
        // A missing file is the first run, not an error.
        let _ = rl.load_history(path);
    }
    println!(
        "maglevc {} (maglevd at {}): Tab completes, ? helps, Ctrl-D leaves",
        env!("CARGO_PKG_VERSION"),
        opts.server
    );
    let mut history_warned = false;
    loop {
        let line = match rl.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line.trim());
        if let Some(path) = &opts.history {
            if let Err(e) = rl.append_history(path) {
                if !history_warned {
                    eprintln!(
                        "{}",
                        opts.style
                            .error(&format!("history not saved to {}: {e}", path.display()))
                    );
                    history_warned = true;
                }
            }
        }
        let cmd = match resolve(&words) {
            Ok(Command::Quit) => break,
            Ok(c) => c,
            Err(ResolveError::Empty) => continue,
            Err(e) => {
                eprintln!("{}", opts.style.error(&e.to_string()));
                failed = 2;
                continue;
            }
        };
        let Some(helper) = rl.helper() else { break };
        if let Err(e) = execute(rt, &helper.link, &cmd, opts) {
            eprintln!("{}", opts.style.error(&e.to_string()));
            failed = if matches!(e, CliError::Usage(_)) {
                2
            } else {
                1
            };
        }
    }
    Ok(if scripted { failed } else { 0 })
}

fn execute(
    rt: &Runtime,
    link: &Link<'_>,
    cmd: &Command,
    opts: &ShellOptions,
) -> Result<(), CliError> {
    if let Some(out) = local(cmd) {
        print_output(&out, opts.json);
        return Ok(());
    }
    let mut client = link.client()?;
    match cmd {
        Command::WatchEvents { .. } => rt.block_on(watch_command(&mut client, cmd)),
        _ => match rt.block_on(until_interrupted(run(&mut client, cmd, opts.style), false)) {
            Some(r) => r.map(|out| print_output(&out, opts.json)),
            None => Err(CliError::Usage("interrupted".to_string())),
        },
    }
}

/// Prints a command's output as text or JSON.
pub fn print_output(out: &crate::run::Output, json: bool) {
    if json {
        println!("{}", out.json);
    } else {
        print!("{}", out.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_at_the_cursor() {
        assert_eq!(split_at_cursor(""), (vec![], ""));
        assert_eq!(split_at_cursor("sh"), (vec![], "sh"));
        assert_eq!(split_at_cursor("sh "), (vec!["sh"], ""));
        assert_eq!(split_at_cursor("show fr"), (vec!["show"], "fr"));
    }

    #[test]
    fn question_mark_lists_what_follows_or_what_a_word_may_become() {
        let after_show = question_mark("show ");
        assert!(after_show.contains("frontends"), "{after_show}");
        assert!(after_show.contains("vpp"), "{after_show}");
        let inside = question_mark("show f");
        assert!(
            inside.contains("frontends") && inside.contains("frontend "),
            "{inside}"
        );
        assert!(!inside.contains("backends"), "{inside}");
        let slot = question_mark("show frontend ");
        assert!(slot.contains("<frontend>"), "{slot}");
        assert!(question_mark("show nope ").contains("unknown word \"nope\""));
        assert!(question_mark("show zz").contains("no command continues with \"zz\""));
    }
}
