//! The `kiroku` command line (SPEC §8): one typed configuration, read from flags and the
//! environment.

use crate::app::Application;
use crate::ledger::Ledger;
use crate::storage::chain::{verify, Verdict};
use crate::storage::tokens::{self, Role};
use clap::{Parser, Subcommand};
use kiroku_domain::staff::staff_id_of;
use kiroku_domain::values::EmployeeNo;
use std::net::SocketAddr;
use std::process::ExitCode;

pub const DEFAULT_DATABASE: &str = "sqlite://kiroku.db";

#[derive(Parser, Debug)]
#[command(
    name = "kiroku",
    version,
    about = "Kiroku (記録): the event-sourced ledger of staff training and HR records"
)]
pub struct Cli {
    /// The ledger: sqlite://FILE (embedded, the default) or postgres://…
    #[arg(long, env = "DATABASE_URL", global = true, default_value = DEFAULT_DATABASE)]
    pub database: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs the server.
    Serve {
        #[arg(long, env = "KIROKU_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Fill an empty ledger with the demo city before serving.
        #[arg(long)]
        demo: bool,
    },
    /// Fills an empty ledger with the demo city (about 1,000 staff, FY2021–FY2025).
    Demo,
    /// Manages API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Personal keys and the master key that wraps them.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Checks the append-only hash chain, reading only; exits 1 and names the first bad
    /// position. With --digest, also proves the log still extends that signed digest.
    Verify {
        /// A digest made earlier by `kiroku log digest`.
        #[arg(long)]
        digest: Option<std::path::PathBuf>,
        /// A chain head as a published sheet shows it (公表時の台帳ダイジェスト):
        /// POSITION:HASH, e.g. 49012:06d7d4de….
        #[arg(long, value_name = "POSITION:HASH")]
        head: Option<String>,
    },
    /// Rebuilds every projection from the log; prints events and seconds.
    Rebuild,
    /// Measures Kiroku beside the raw cqrs-es framework in one run, on scratch databases
    /// (never the ledger named by --database): append over HTTP with 1 and 8 clients.
    Bench {
        /// Commands per measurement.
        #[arg(long, default_value_t = 2000)]
        commands: usize,
        /// A PostgreSQL server whose user may create databases (e.g.
        /// postgres://postgres@127.0.0.1:5432/postgres); SQLite only without it.
        #[arg(long, env = "KIROKU_BENCH_POSTGRES")]
        postgres: Option<String>,
        /// Grow Kiroku's ledger first to a city of this many staff members (with --years):
        /// each completes 5 courses a year, imported as attendance sheets.
        #[arg(long, default_value_t = 0)]
        staff: usize,
        /// Fiscal years of history of the grown city, ending with FY2024.
        #[arg(long, default_value_t = 0)]
        years: usize,
    },
    /// Bulk imports, all or nothing.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// The whole log as NDJSON: backup, and the move from SQLite to PostgreSQL.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Reports from the ledger.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Staff records.
    Staff {
        #[command(subcommand)]
        command: StaffCommandLine,
    },
}

#[derive(Subcommand, Debug)]
pub enum StaffCommandLine {
    /// Erases a person's personal data for good (crypto-shredding): records the erasure and
    /// destroys their key. Names and free texts read as 削除済み everywhere; counts stay.
    Erase {
        /// 職員番号.
        employee_no: String,
        /// Why (kept in the log, in clear: write no personal details here).
        #[arg(long)]
        reason: String,
        /// Who is doing it, as the log will name them.
        #[arg(long, default_value = "人事課（CLI）")]
        actor: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// An attendance sheet (CSV: employee_no,course_code,session_starts_on,completed_on,understanding).
    Attendance {
        file: std::path::PathBuf,
        /// utf-8 or shift_jis (Windows-31J / CP932, as Excel writes it).
        #[arg(long, default_value = "utf-8")]
        encoding: String,
        /// Recorded as the actor of every event.
        #[arg(long, env = "KIROKU_ACTOR", default_value = "人事課（CLI）")]
        actor: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Writes every event (with its position, recorded_at and hash) and the personal keys.
    /// The file is as confidential as the database.
    Export {
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
    /// Restores an export into an empty ledger, all or nothing; refused on a non-empty one.
    Import { file: std::path::PathBuf },
    /// A signed digest of the chain head (position, hash, time), to keep outside the server;
    /// `kiroku verify --digest FILE` later proves the log still extends it.
    Digest {
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
        /// The Ed25519 signing key (32 bytes), kept outside the database; created when missing.
        #[arg(long, env = "KIROKU_DIGEST_KEY", default_value = "kiroku-digest.key")]
        key: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// The progress sheet (進行管理シート) of one plan item.
    Sheet {
        #[arg(long)]
        item: String,
        /// The sheet as the ledger stood then: RFC 3339, or a date alone for the end of that
        /// day in JST (2024-05-31).
        #[arg(long)]
        as_of: Option<String>,
        /// json, csv, xlsx or html.
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Wraps under the master key (KIROKU_MASTER_KEY) every personal key still wrapped under
    /// the one before a rotation (KIROKU_MASTER_KEY_PREVIOUS), checks that every key opens
    /// under it (exits 1 if one does not), and destroys the key of anyone the log records as
    /// erased whose key is still there. Writes nothing but the key table.
    Rewrap,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Creates a token and prints it on stdout (only its hash is stored).
    Create {
        #[arg(long, value_enum)]
        role: Role,
        /// Who holds the token; recorded as the actor of every event it writes.
        #[arg(long)]
        name: String,
        /// The holder's employee number (required for manager and staff tokens).
        #[arg(long)]
        staff: Option<String>,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("kiroku: {message}");
            ExitCode::from(2)
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode, String> {
    if !matches!(cli.command, Command::Serve { .. } | Command::Bench { .. }) {
        crate::storage::wait_patiently();
    }
    match cli.command {
        Command::Serve { addr, demo } => {
            let app = Application::build(&cli.database, addr)
                .await
                .map_err(|e| e.to_string())?;
            if demo {
                let ledger = app.ledger();
                let events = crate::storage::log::count(&ledger.backend)
                    .await
                    .map_err(|e| e.to_string())?;
                if events == 0 {
                    let summary = load_demo(&ledger).await?;
                    tracing::info!(events = summary.events, "the demo city is loaded");
                    demo_tokens(&ledger, app.port()).await?;
                } else {
                    tracing::info!(
                        events,
                        "the ledger is not empty; the demo city is not loaded again"
                    );
                }
            }
            tracing::info!(port = app.port(), database = %redact(&cli.database), "kiroku is serving");
            app.run_until(shutdown_signal())
                .await
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::Rewrap,
        } => {
            use crate::storage::keys::{KeyStore, MasterKey};
            let backend = crate::storage::Backend::connect(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let master = MasterKey::load().map_err(|e| e.to_string())?;
            let source = master.source.clone();
            match KeyStore::new(backend, master).prepare().await {
                Ok(prepared) => {
                    if prepared.checked + prepared.wrapped == 0 {
                        eprintln!(
                            "kiroku: この台帳には個人鍵が1件もありません。指定したデータベースが正しいか確かめてください"
                        );
                    }
                    // Opening the ledger completes every erasure the log records whose key a
                    // crash left (the event written, the key not yet destroyed), as a server's
                    // start does: a rotation after an erasure must not hand that key on.
                    let ledger = Ledger::open(&cli.database)
                        .await
                        .map_err(|e| e.to_string())?;
                    let erased = ledger.projector.erased().map_err(|e| e.to_string())?.len();
                    println!(
                        "{} personal keys open under the master key ({source}); {} wrapped again from KIROKU_MASTER_KEY_PREVIOUS, {} stored unwrapped now wrapped; the keys of {erased} erased people are destroyed",
                        prepared.checked + prepared.wrapped,
                        prepared.rewrapped,
                        prepared.wrapped
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(error @ crate::storage::StorageError::Crypto(_)) => {
                    eprintln!(
                        "kiroku: 個人鍵をマスター鍵で開けません（{error}）。鍵を替えた直後なら、前のマスター鍵を KIROKU_MASTER_KEY_PREVIOUS に指定してください"
                    );
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error.to_string()),
            }
        }
        Command::Token {
            command: TokenCommand::Create { role, name, staff },
        } => {
            let ledger = Ledger::open(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let staff_id = match staff {
                Some(no) => {
                    let no = EmployeeNo::parse(&no).map_err(|e| e.to_string())?;
                    let id = staff_id_of(&no);
                    let known = ledger
                        .projector
                        .read(|h| h.staff.contains_key(&id))
                        .map_err(|e| e.to_string())?;
                    if !known {
                        return Err(format!(
                            "no staff member with employee number {}",
                            no.as_str()
                        ));
                    }
                    Some(id)
                }
                None if matches!(role, Role::Manager | Role::Staff) => {
                    return Err("manager and staff tokens need --staff EMPLOYEE_NO".into())
                }
                None => None,
            };
            let token = tokens::create(&ledger.backend, role, &name, staff_id)
                .await
                .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            let ledger = Ledger::open(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let summary = load_demo(&ledger).await?;
            println!(
                "demo city loaded: {} events, {} staff, {} sessions, {} completions",
                summary.events, summary.staff, summary.sessions, summary.completions
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Staff {
            command:
                StaffCommandLine::Erase {
                    employee_no,
                    reason,
                    actor,
                },
        } => {
            use crate::application::{AppError, Command as AppCommand, Service, StaffRequest};
            use kiroku_domain::staff::{staff_id_of, StaffCommand};
            use kiroku_domain::values::{EmployeeNo, Text};
            let employee_no = EmployeeNo::parse(&employee_no)
                .map_err(|e| format!("職員番号 {employee_no:?}: {e}"))?;
            let reason = Text::parse(&reason).map_err(|e| format!("--reason: {e}"))?;
            let ledger = Ledger::open(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let principal = crate::storage::tokens::Principal {
                name: actor,
                role: Role::HrAdmin,
                staff_id: None,
            };
            let request_id = uuid::Uuid::new_v4().to_string();
            let actor = crate::application::Actor {
                principal: &principal,
                request_id: &request_id,
                as_of: None,
                unconfirmed: None,
            };
            let command = AppCommand::Staff {
                staff_id: staff_id_of(&employee_no),
                command: StaffRequest::Other(StaffCommand::ErasePersonalData { reason }),
            };
            match Service::new(&ledger).execute(&actor, command).await {
                Ok(_) => {
                    println!(
                        "erased: the personal data of {} (key destroyed; counts unchanged)",
                        employee_no.as_str()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(
                    error @ (AppError::Command(crate::ledger::CommandError::Refused { .. })
                    | AppError::NotFound { .. }),
                ) => {
                    eprintln!("kiroku: {error}。何も変更していません");
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error.to_string()),
            }
        }
        Command::Bench {
            commands,
            postgres,
            staff,
            years,
        } => {
            let scale =
                (staff > 0 && years > 0).then_some(crate::bench::generator::Scale { staff, years });
            let program = std::env::current_exe()
                .map_err(|e| format!("kiroku の実行ファイルが見つかりません: {e}"))?;
            let options = crate::bench::Options {
                commands,
                postgres,
                scale,
                program,
            };
            let figures = crate::bench::run(&options)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", crate::bench::render(&figures));
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild => {
            let backend = crate::storage::Backend::connect(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            crate::projector::Projector::drop_checkpoints(&backend)
                .await
                .map_err(|e| e.to_string())?;
            let projector = crate::projector::Projector::new(backend.clone());
            projector.catch_up().await.map_err(|e| e.to_string())?;
            if let Some(stopped) = projector.stopped() {
                return Err(format!(
                    "the rebuild stopped at position {} ({}): {}. This version cannot read that \
                     event; nothing was checkpointed",
                    stopped.position, stopped.event_type, stopped.problem
                ));
            }
            projector
                .checkpoint_quiet()
                .await
                .map_err(|e| e.to_string())?;
            let (position, fingerprint) = projector.fingerprint().map_err(|e| e.to_string())?;
            let events = crate::storage::log::count(&backend)
                .await
                .map_err(|e| e.to_string())?;
            let peak = crate::metrics::peak_memory_bytes().map_or_else(String::new, |bytes| {
                format!(", peak memory {} MB", bytes >> 20)
            });
            println!(
                "rebuilt every projection from {events} events (position {position}) in {:.3} s{peak}; fingerprint {fingerprint}",
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            command:
                ImportCommand::Attendance {
                    file,
                    encoding,
                    actor,
                },
        } => {
            use crate::import::{decode, import_attendance, Encoding, ImportError};
            let encoding = Encoding::parse(&encoding)
                .ok_or_else(|| format!("--encoding {encoding:?}: use utf-8 or shift_jis"))?;
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let ledger = Ledger::open(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let principal = crate::storage::tokens::Principal {
                name: actor,
                role: Role::HrAdmin,
                staff_id: None,
            };
            let request_id = uuid::Uuid::new_v4().to_string();
            let actor = crate::application::Actor {
                principal: &principal,
                request_id: &request_id,
                as_of: None,
                unconfirmed: None,
            };
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} 行 {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let result = match decode(&bytes, encoding) {
                Ok(text) => {
                    import_attendance(&ledger, &text, &actor, |done, total| {
                        bar.set_length(total as u64);
                        bar.set_position(done as u64);
                    })
                    .await
                }
                Err(error) => Err(error),
            };
            bar.finish_and_clear();
            match result {
                Ok(summary) => {
                    println!(
                        "imported {} rows into {} sessions: {} events, up to position {}",
                        summary.rows,
                        summary.sessions,
                        summary.events,
                        summary.position.unwrap_or(0)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(ImportError::Rejected(errors)) => {
                    for error in &errors {
                        eprintln!("{}行目: {}", error.line, error.message);
                    }
                    eprintln!(
                        "{} 件の問題があるため、何も取り込みませんでした",
                        errors.len()
                    );
                    Ok(ExitCode::from(1))
                }
                Err(other) => Err(other.to_string()),
            }
        }
        Command::Report {
            command:
                ReportCommand::Sheet {
                    item,
                    as_of,
                    format,
                    output,
                },
        } => {
            let format = crate::reports::Format::parse(&format)
                .ok_or_else(|| format!("format {format:?}: use json, csv, xlsx or html"))?;
            let as_of = match as_of {
                Some(text) => Some(
                    kiroku_projections::time::parse_as_of(&text, crate::storage::now_ms())
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            let ledger = Ledger::open(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let sheet = ledger
                .projector
                .sheet(&item, as_of)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no plan item {item} at that time"))?;
            let bytes = crate::reports::render(&sheet, format).map_err(|e| e.to_string())?;
            match output {
                Some(path) => std::fs::write(&path, bytes).map_err(|e| e.to_string())?,
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .write_all(&bytes)
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Log {
            command: LogCommand::Export { output },
        } => {
            use crate::storage::backup;
            let backend = crate::storage::Backend::connect(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let header = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    backup::export(&backend, &mut out).await
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    backup::export(&backend, &mut out).await
                }
            }
            .map_err(|e| e.to_string())?;
            eprintln!(
                "exported {} events up to position {} (head {})",
                header.events, header.head_position, header.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Log {
            command: LogCommand::Import { file },
        } => {
            use crate::storage::backup;
            let backend = crate::storage::Backend::connect(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            match backup::import_file(&backend, &file).await {
                Ok(restored) => {
                    println!(
                        "imported {} events and {} keys up to position {} (head {})",
                        restored.events, restored.keys, restored.head_position, restored.head_hash
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(
                    error @ (backup::BackupError::NotEmpty { .. }
                    | backup::BackupError::Invalid { .. }
                    | backup::BackupError::Io(_)),
                ) => {
                    eprintln!("kiroku: {error}。何も取り込みませんでした");
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error.to_string()),
            }
        }
        Command::Verify { digest, head } => {
            // Only reads: no projector, nothing written.
            let backend = crate::storage::Backend::connect(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let mut failed = false;
            match verify(&backend).await.map_err(|e| e.to_string())? {
                Verdict::Intact { events, head } => {
                    println!("ok: {events} events, hash chain intact (head {head})");
                }
                Verdict::Broken { position, problem } => {
                    println!("TAMPERED at position {position}: {problem}");
                    failed = true;
                }
            }
            if let Some(path) = digest {
                use crate::storage::digest::{prove, Digest, Proof};
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let digest: Digest = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: ダイジェストを読めません: {e}", path.display()))?;
                println!(
                    "digest: position {} hash {} recorded {} key {}",
                    digest.position, digest.hash, digest.recorded_at, digest.public_key
                );
                match prove(&backend, &digest).await.map_err(|e| e.to_string())? {
                    Proof::Extends { head } => println!(
                        "ok: the log extends the digest (position {} → head {head})",
                        digest.position
                    ),
                    Proof::Fails(why) => {
                        println!("TAMPERED: {why}");
                        failed = true;
                    }
                }
            }
            if let Some(head) = head {
                use crate::storage::digest::{extends, Proof};
                let (position, hash) = head
                    .split_once(':')
                    .and_then(|(p, h)| Some((p.trim().parse::<i64>().ok()?, h.trim())))
                    .ok_or_else(|| {
                        format!(
                            "--head {head:?}: 位置:ハッシュ（例 49012:06d7…）で指定してください"
                        )
                    })?;
                match extends(&backend, position, hash)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Proof::Extends { head } => println!(
                        "ok: the log extends the published head (position {position} → head {head})"
                    ),
                    Proof::Fails(why) => {
                        println!("TAMPERED: {why}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Log {
            command: LogCommand::Digest { output, key },
        } => {
            use crate::storage::digest::{load_or_create_key, make};
            let backend = crate::storage::Backend::connect(&cli.database)
                .await
                .map_err(|e| e.to_string())?;
            let (signing, created) = load_or_create_key(&key).map_err(|e| e.to_string())?;
            if created {
                eprintln!(
                    "新しい署名鍵を {} に作りました。データベースとは別の場所に保管してください",
                    key.display()
                );
            }
            let digest = make(&backend, &signing).await.map_err(|e| e.to_string())?;
            let text = serde_json::to_string_pretty(&digest).map_err(|e| e.to_string())? + "\n";
            match output {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?
                }
                None => print!("{text}"),
            }
            eprintln!(
                "ダイジェスト: 位置 {} ハッシュ {}（{}）。公開鍵 {}",
                digest.position, digest.hash, digest.recorded_at, digest.public_key
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Tokens to try the demo city in a browser with, one per role, shown once.
async fn demo_tokens(ledger: &Ledger, port: u16) -> Result<(), String> {
    use crate::application::today_jst;
    let today = today_jst();
    // The head of the HR department and one of its staff, as they are today.
    let (head, member) = ledger
        .projector
        .read(|h| {
            let mut team: Vec<_> = h
                .staff
                .values()
                .filter(|s| s.in_service_on(today))
                .filter(|s| {
                    s.department_on(today)
                        .is_some_and(|d| d.department.as_str() == "人事課")
                })
                .map(|s| {
                    (
                        s.grade_on(today).map(|g| g.value()).unwrap_or(0),
                        s.staff_id,
                        s.employee_no.as_str().to_string(),
                    )
                })
                .collect();
            team.sort();
            (team.last().cloned(), team.first().cloned())
        })
        .map_err(|e| e.to_string())?;
    let backend = &ledger.backend;
    let mut lines = Vec::new();
    let token = |role, name: &'static str, staff| async move {
        tokens::create(backend, role, name, staff)
            .await
            .map_err(|e| e.to_string())
    };
    lines.push((
        "人事担当".to_string(),
        token(Role::HrAdmin, "人事課（デモ）", None).await?,
    ));
    lines.push((
        "監査".to_string(),
        token(Role::Auditor, "監査委員（デモ）", None).await?,
    ));
    if let Some((_, id, no)) = head {
        let t = token(Role::Manager, "人事課長（デモ）", Some(id)).await?;
        lines.push((format!("所属長 {no}"), t));
    }
    if let Some((_, id, no)) = member {
        let t = token(Role::Staff, "人事課職員（デモ）", Some(id)).await?;
        lines.push((format!("職員 {no}"), t));
    }
    println!("デモの自治体を読み込みました。ブラウザで http://127.0.0.1:{port}/ を開き、次のトークンでサインインしてください（トークンの表示はこの一度だけです）。");
    for (role, token) in lines {
        println!("  {role:<12} {token}");
    }
    Ok(())
}

async fn load_demo(ledger: &Ledger) -> Result<crate::demo::DemoSummary, String> {
    let started = std::time::Instant::now();
    let summary = crate::demo::load(ledger).await.map_err(|e| e.to_string())?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        events = summary.events,
        "demo city generated"
    );
    Ok(summary)
}

/// Hides a password in a database URL for logs.
fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, rest)) if credentials.contains(':') && url.starts_with("postgres") => {
            let scheme_end = credentials.find("://").map(|i| i + 3).unwrap_or(0);
            let user = credentials[scheme_end..].split(':').next().unwrap_or("");
            format!("{}{}:***@{}", &credentials[..scheme_end], user, rest)
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
