//! The admin command line (`numbers assign`, `numbers import`, ...) end to end: the built binary
//! against a real server on a socket, on the Contoso demo tenant. Each command's effect is
//! checked over gRPC, each failure by its exit code and the reason it prints, and a refused
//! command or import leaves the data exactly as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use number_management::auth::Role;
use number_management::proto::v1 as pb;
use numbers_operator_simulator::{OperatorSettings, RunningSimulator, SimulatorSettings};

use crate::assignment::{State, get_number, get_user};
use crate::helpers::{Backend, TestApp, TestConfig, free_address, numbers_command};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN: &str = "john@contoso.com";
const JACK: &str = "jack@contoso.com";
/// Calling Plan, unassigned, emergency location `redmond-hq`.
const CP_0101: &str = "+14255550101";
/// Operator Connect (Fabrikam), unassigned.
const OC_0102: &str = "+14255550102";
/// Calling Plan, unassigned, no emergency location.
const CP_0103: &str = "+14255550103";
/// Litware Mobile's number, activated by the simulator after a delay.
const SIM_0301: &str = "+14255550301";

/// What a finished command printed, and its exit code.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    #[track_caller]
    fn succeeded(&self) -> &Self {
        assert_eq!(self.code, 0, "the command failed: {self:#?}");
        self
    }

    #[track_caller]
    fn exited(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code: {self:#?}");
        self
    }

    /// Standard output as JSON.
    #[track_caller]
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// The command line pointed at `app` as an admin of Contoso, with a login file of its own.
struct Cli {
    server: String,
    token: String,
    login_file: PathBuf,
    dir: tempfile::TempDir,
}

impl Cli {
    fn new(app: &TestApp, role: Role) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self {
            server: app.address.to_string(),
            token: app.token(TENANT, role),
            login_file: dir.path().join("cli.toml"),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `numbers <args>` with only the login file set.
    async fn bare(&self, args: &[&str]) -> Ran {
        let mut command = numbers_command(args);
        command.env("NUMBERS_CLI_CONFIG", &self.login_file);
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::from(command).output(),
        )
        .await
        .expect("the command finished within a minute")
        .expect("run numbers");
        Ran {
            code: output.status.code().expect("an exit code"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 errors"),
        }
    }

    /// Runs `numbers <args>` against the server with the token.
    async fn run(&self, args: &[&str]) -> Ran {
        let mut all = args.to_vec();
        all.extend(["--server", &self.server, "--token", &self.token]);
        self.bare(&all).await
    }
}

on_both_stores!(
    the_seeds_three_operations_from_the_command_line,
    each_kind_of_failure_has_its_exit_code,
    an_import_is_checked_whole_then_run,
);

/// Assign, change and remove as the README shows them, each checked over gRPC.
async fn the_seeds_three_operations_from_the_command_line(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let cli = Cli::new(&app, Role::Admin);
    let mut admin = app.admin(TENANT);

    let ran = cli
        .run(&[
            "assign",
            "--identity",
            JOHN,
            "--phone-number",
            CP_0101,
            "--type",
            "calling-plan",
        ])
        .await;
    assert!(
        ran.succeeded()
            .stdout
            .contains(&format!("assigned {CP_0101} to {JOHN}")),
        "{ran:#?}"
    );
    let number = get_number(&mut admin, CP_0101).await;
    assert_eq!(number.assigned_to_user_principal_name, JOHN);
    assert_eq!(
        number.assignment_category(),
        pb::AssignmentCategory::Primary
    );

    let ran = cli
        .run(&[
            "change",
            "--identity",
            JOHN,
            "--phone-number",
            CP_0103,
            "--location",
            "redmond-hq",
            "--no-notify",
            "-o",
            "json",
        ])
        .await;
    let answer = ran.succeeded().json();
    assert_eq!(answer["previousPhoneNumber"]["phoneNumber"], CP_0101);
    assert_eq!(answer["phoneNumber"]["phoneNumber"], CP_0103);
    assert_eq!(answer["phoneNumber"]["emergencyLocationId"], "redmond-hq");
    assert_eq!(get_user(&mut admin, JOHN).await.phone_numbers, [CP_0103]);

    let ran = cli.run(&["get", CP_0103, "-o", "json"]).await;
    assert_eq!(ran.succeeded().json()["assignedToUserPrincipalName"], JOHN);

    let ran = cli
        .run(&["remove", "--identity", JOHN, "--all", "--block-days", "30"])
        .await;
    assert!(
        ran.succeeded()
            .stdout
            .contains(&format!("removed {CP_0103} from {JOHN}"))
    );
    let number = get_number(&mut admin, CP_0103).await;
    assert_eq!(number.assignment_status(), pb::AssignmentStatus::Unassigned);
    assert_eq!(
        number.assignment_blocked_state(),
        pb::AssignmentBlockedState::BlockedUntil
    );
    let john = get_user(&mut admin, JOHN).await;
    assert!(john.phone_numbers.is_empty() && !john.enterprise_voice_enabled);

    // The trail shows who did what, filtered to the number.
    let ran = cli
        .run(&["audit", "--phone-number", CP_0103, "-o", "json"])
        .await;
    let actions: Vec<String> = ran.succeeded().json()["auditEvents"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        actions.contains(&"CHANGE_PHONE_NUMBER".to_owned())
            && actions.contains(&"REMOVE_PHONE_NUMBER".to_owned()),
        "{actions:?}"
    );
}

/// Refused by a rule 3, not found 4, unreachable 5, not allowed 6, usage 2; the reason is
/// printed (as JSON with `-o json`) and nothing changes.
async fn each_kind_of_failure_has_its_exit_code(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let cli = Cli::new(&app, Role::Admin);
    let mut admin = app.admin(TENANT);
    cli.run(&["assign", "--identity", JOHN, "--phone-number", CP_0101])
        .await
        .succeeded();

    let before = State::read(&app).await;
    let ran = cli
        .run(&["assign", "--identity", JACK, "--phone-number", CP_0101])
        .await;
    assert!(
        ran.exited(3).stderr.contains("NUMBER_ALREADY_ASSIGNED"),
        "{ran:#?}"
    );
    let ran = cli
        .run(&[
            "assign",
            "--identity",
            JACK,
            "--phone-number",
            CP_0101,
            "-o",
            "json",
        ])
        .await;
    let error: serde_json::Value =
        serde_json::from_str(ran.exited(3).stderr.trim()).expect("a JSON error");
    assert_eq!(error["code"], "FAILED_PRECONDITION");
    assert_eq!(error["reason"], "NUMBER_ALREADY_ASSIGNED");
    before.assert_unchanged(&app).await;

    let ran = cli.run(&["get", "+14255559999"]).await;
    assert!(
        ran.exited(4).stderr.contains("NUMBER_NOT_FOUND"),
        "{ran:#?}"
    );
    let ran = cli.run(&["users", "get", "nobody@contoso.com"]).await;
    assert!(ran.exited(4).stderr.contains("USER_NOT_FOUND"), "{ran:#?}");

    let closed = free_address().to_string();
    let ran = cli
        .bare(&["get", CP_0101, "--server", &closed, "--token", &cli.token])
        .await;
    assert!(
        ran.exited(5).stderr.contains("is the server running?"),
        "{ran:#?}"
    );

    let ran = cli
        .bare(&[
            "get",
            CP_0101,
            "--server",
            &cli.server,
            "--token",
            "not-a-token",
        ])
        .await;
    assert!(ran.exited(6).stderr.contains("UNAUTHENTICATED"), "{ran:#?}");
    let reader = Cli::new(&app, Role::Reader);
    let ran = reader
        .run(&["remove", "--identity", JOHN, "--phone-number", CP_0101])
        .await;
    assert!(
        ran.exited(6).stderr.contains("PERMISSION_DENIED"),
        "{ran:#?}"
    );
    // A reader still reads.
    reader.run(&["get", CP_0101]).await.succeeded();

    cli.run(&["remove", "--identity", JOHN]).await.exited(2);
    cli.run(&["remove", "--identity", JOHN, "--all", "--block-days", "400"])
        .await
        .exited(2);
    cli.run(&["list", "--status", "taken"]).await.exited(2);
    before.assert_unchanged(&app).await;
    assert_eq!(
        get_number(&mut admin, CP_0101)
            .await
            .assigned_to_user_principal_name,
        JOHN
    );
}

/// A file with a bad row changes nothing and says why, row by row; the fixed file runs as one
/// bulk operation and every row's result is written.
async fn an_import_is_checked_whole_then_run(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let cli = Cli::new(&app, Role::Admin);
    let mut admin = app.admin(TENANT);
    let file = cli.path("assignments.csv");
    let results = cli.path("assignments.results.csv");

    std::fs::write(
        &file,
        format!(
            "Identity,Number,Type,Location,Category\n\
             {JOHN},{CP_0101},calling-plan,,primary\n\
             {JACK},{OC_0102},Operator Connect,,\n\
             lee@contoso.com,{CP_0103},pstn,,\n\
             nobody@contoso.com,{CP_0103},,,\n"
        ),
    )
    .expect("write the file");
    let before = State::read(&app).await;
    let ran = cli.run(&["import", file.to_str().unwrap()]).await;
    ran.exited(3);
    assert!(
        ran.stdout
            .contains("2 of 4 rows can be assigned, 2 would be refused")
            && ran.stdout.contains("nothing was changed"),
        "{ran:#?}"
    );
    let rows = read_csv(&results);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[0][3..5], ["can be assigned", "OK"]);
    assert_eq!(rows[1][3..5], ["can be assigned", "OK"]);
    assert_eq!(
        rows[2][..6],
        [
            "4",
            "lee@contoso.com",
            CP_0103,
            "would be refused",
            "INVALID_ARGUMENT",
            "INVALID_CSV_VALUE"
        ]
    );
    assert_eq!(
        rows[3][3..6],
        ["would be refused", "NOT_FOUND", "USER_NOT_FOUND"]
    );
    before.assert_unchanged(&app).await;

    // A plan of a good file changes nothing either.
    std::fs::write(
        &file,
        format!("identity,number,type\n{JOHN},{CP_0101},calling-plan\n{JACK},{OC_0102},\n"),
    )
    .expect("write the file");
    cli.run(&["import", file.to_str().unwrap(), "--plan"])
        .await
        .succeeded();
    before.assert_unchanged(&app).await;

    let other_results = cli.path("out.csv");
    let ran = cli
        .run(&[
            "import",
            file.to_str().unwrap(),
            "--results",
            other_results.to_str().unwrap(),
        ])
        .await;
    assert!(
        ran.succeeded()
            .stdout
            .contains("2 of 2 rows assigned, 0 refused"),
        "{ran:#?}"
    );
    let rows = read_csv(&other_results);
    assert!(
        rows.iter()
            .all(|row| row[3] == "assigned" && row[4] == "OK"),
        "{rows:?}"
    );
    assert_eq!(
        get_number(&mut admin, CP_0101)
            .await
            .assigned_to_user_principal_name,
        JOHN
    );
    assert_eq!(
        get_number(&mut admin, OC_0102)
            .await
            .assigned_to_user_principal_name,
        JACK
    );

    // A file that is not what the command expects is a usage mistake, said before any call.
    std::fs::write(&file, "user,phone\njohn,+1425\n").expect("write the file");
    let ran = cli.run(&["import", file.to_str().unwrap()]).await;
    assert!(
        ran.exited(2).stderr.contains("must name the columns"),
        "{ran:#?}"
    );
}

/// The rows of a CSV file, without its header.
fn read_csv(path: &Path) -> Vec<Vec<String>> {
    csv::Reader::from_path(path)
        .expect("read the results")
        .records()
        .map(|r| r.expect("a CSV row").iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_follow_pages_and_filters() {
    let app = TestApp::spawn_demo(Backend::Sqlite).await;
    let cli = Cli::new(&app, Role::Admin);
    let mut admin = app.admin(TENANT);
    let all = admin
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .phone_numbers;

    let ran = cli.run(&["list", "--page-size", "2"]).await;
    assert!(
        ran.succeeded().stderr.contains("more: --page-token"),
        "{ran:#?}"
    );
    assert_eq!(
        ran.stdout.lines().count(),
        3,
        "a header and two numbers: {ran:#?}"
    );

    let ran = cli
        .run(&["list", "--page-size", "2", "--all", "-o", "json"])
        .await;
    let listed = ran.succeeded().json()["phoneNumbers"]
        .as_array()
        .expect("numbers")
        .len();
    assert_eq!(listed, all.len());

    let ran = cli
        .run(&["list", "--type", "operator-connect", "--all", "-o", "json"])
        .await;
    let listed = ran.succeeded().json()["phoneNumbers"]
        .as_array()
        .expect("numbers")
        .clone();
    let operator_connect = all
        .iter()
        .filter(|n| n.number_type() == pb::NumberType::OperatorConnect)
        .count();
    assert_eq!(listed.len(), operator_connect);
    assert!(listed.iter().all(|n| n["numberType"] == "OPERATOR_CONNECT"));

    let ran = cli.run(&["users", "search", "jo"]).await;
    assert!(
        ran.succeeded().stdout.contains(JOHN) && !ran.stdout.contains(JACK),
        "{ran:#?}"
    );

    let ran = cli
        .run(&[
            "locations",
            "create",
            "--description",
            "Lab",
            "--company",
            "Contoso",
            "--house-number",
            "1",
            "--street",
            "Microsoft Way",
            "--city",
            "Redmond",
            "--state",
            "WA",
            "--postal-code",
            "98052",
            "--country",
            "US",
            "-o",
            "json",
        ])
        .await;
    let id = ran.succeeded().json()["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let ran = cli.run(&["locations", "list", "--city", "redmond"]).await;
    assert!(ran.succeeded().stdout.contains(&id), "{ran:#?}");

    let export = cli.path("inventory.csv");
    let ran = cli
        .run(&["export", "--file", export.to_str().unwrap()])
        .await;
    assert!(
        ran.succeeded()
            .stderr
            .contains(&format!("wrote {} numbers", all.len()))
    );
    let rows = read_csv(&export);
    assert_eq!(rows.len(), all.len());
    assert_eq!(rows[0][0], all[0].phone_number);
    let ran = cli.run(&["export", "--type", "calling-plan"]).await;
    assert!(
        ran.succeeded().stdout.starts_with("phone_number,"),
        "{ran:#?}"
    );
    assert!(
        ran.stdout
            .lines()
            .skip(1)
            .all(|l| l.contains(",CALLING_PLAN,"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_keeps_the_server_and_token_for_later_commands() {
    let app = TestApp::spawn_demo(Backend::Sqlite).await;
    let cli = Cli::new(&app, Role::Admin);

    // A token the server refuses is not kept.
    cli.bare(&["login", "--server", &cli.server, "--token", "not-a-token"])
        .await
        .exited(6);
    assert!(!cli.login_file.exists());

    cli.run(&["login"]).await.succeeded();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cli.login_file)
            .expect("the login file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the login file is readable by its owner only"
        );
    }
    let ran = cli.bare(&["get", CP_0101, "-o", "json"]).await;
    assert_eq!(ran.succeeded().json()["phoneNumber"], CP_0101);

    cli.bare(&["logout"]).await.succeeded();
    assert!(!cli.login_file.exists());
    // Without it the command goes to the local default with no token.
    let ran = cli.bare(&["get", CP_0101]).await;
    assert_ne!(ran.code, 0, "{ran:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operation_wait_ends_with_the_provider() {
    let simulator = RunningSimulator::start(SimulatorSettings {
        operator: OperatorSettings {
            id: "litware-mobile".into(),
            display_name: "Litware Mobile".into(),
            countries: vec!["US".into()],
            tenant_location_update_allowed: true,
        },
        activation_delay: Duration::from_millis(700),
        latency: Duration::ZERO,
        failures: None,
        state_file: None,
    })
    .await
    .expect("start the operator simulator");
    let config = TestConfig::default().with_simulated_operator(&simulator.endpoint());
    let app = TestApp::start_demo(Backend::Sqlite, config).await;
    let cli = Cli::new(&app, Role::Admin);
    let mut admin = app.admin(TENANT);

    let ran = cli
        .run(&["assign", "--identity", JOHN, "--phone-number", SIM_0301])
        .await;
    assert!(
        ran.succeeded().stdout.contains("numbers operation wait"),
        "{ran:#?}"
    );
    let operation = get_number(&mut admin, SIM_0301).await.operation_id;
    assert_eq!(
        get_number(&mut admin, SIM_0301).await.activation_state(),
        pb::ActivationState::AssignmentPending
    );
    let ran = cli
        .run(&["operation", "wait", &operation, "-o", "json"])
        .await;
    assert_eq!(ran.succeeded().json()["state"], "SUCCEEDED");
    assert_eq!(
        get_number(&mut admin, SIM_0301).await.activation_state(),
        pb::ActivationState::Activated
    );
    cli.run(&["operation", "get", "no-such-operation"])
        .await
        .exited(4);
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let mut command = numbers_command(["completions", shell]);
        command.env("NUMBERS_CLI_CONFIG", dir.path().join("cli.toml"));
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .expect("run numbers");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{shell}: {output:?}");
        assert!(
            script.contains("assign") && script.contains("phone-number"),
            "{shell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admins_other_tools_from_the_command_line() {
    let app = TestApp::spawn_demo(Backend::Sqlite).await;
    let cli = Cli::new(&app, Role::Admin);
    let mut admin = app.admin(TENANT);

    cli.run(&["set-location", CP_0103, "--location", "redmond-hq"])
        .await
        .succeeded();
    assert_eq!(
        get_number(&mut admin, CP_0103).await.emergency_location_id,
        "redmond-hq"
    );

    const CP_0104: &str = "+14255550104";
    let ran = cli
        .run(&["block", CP_0104, "--days", "30", "-o", "json"])
        .await;
    assert_eq!(
        ran.succeeded().json()["assignmentBlockedState"],
        "BLOCKED_UNTIL"
    );
    let ran = cli
        .run(&["assign", "--identity", JOHN, "--phone-number", CP_0104])
        .await;
    assert!(ran.exited(3).stderr.contains("NUMBER_BLOCKED"), "{ran:#?}");
    cli.run(&["block", CP_0104]).await.exited(2);
    cli.run(&["unblock", CP_0104]).await.succeeded();
    assert_eq!(
        get_number(&mut admin, CP_0104)
            .await
            .assignment_blocked_state(),
        pb::AssignmentBlockedState::NotBlocked
    );

    cli.run(&["assign", "--identity", JOHN, "--phone-number", CP_0101])
        .await
        .succeeded();
    let ran = cli
        .run(&["transfer", CP_0101, "--from", JOHN, "--to", JACK])
        .await;
    assert!(
        ran.succeeded()
            .stdout
            .contains(&format!("moved {CP_0101} from {JOHN} to {JACK}")),
        "{ran:#?}"
    );
    assert_eq!(
        get_number(&mut admin, CP_0101)
            .await
            .assigned_to_user_principal_name,
        JACK
    );

    cli.run(&["tags", "add", CP_0101, CP_0103, "--tag", "Lobby"])
        .await
        .succeeded();
    let ran = cli.run(&["tags", "list", "-o", "json"]).await;
    assert_eq!(
        ran.succeeded().json()["tags"],
        serde_json::json!([{"name": "Lobby", "phoneNumberCount": "2"}])
    );
    let ran = cli.run(&["list", "--tag", "lobby", "-o", "json"]).await;
    assert_eq!(
        ran.succeeded().json()["phoneNumbers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    cli.run(&["tags", "remove", CP_0103, "--tag", "lobby"])
        .await
        .succeeded();
    assert!(get_number(&mut admin, CP_0103).await.tags.is_empty());

    let ran = cli
        .run(&[
            "config",
            "set",
            "--removal-block-days",
            "7",
            "--assignment-email",
            "false",
        ])
        .await;
    ran.succeeded();
    let ran = cli.run(&["config", "get", "-o", "json"]).await;
    let configuration = ran.succeeded().json();
    assert_eq!(configuration["removalBlockDays"], 7);
    // The setting not given stays as it was; false is JSON's default, left out.
    assert_eq!(configuration["unassignmentEmailEnabled"], true);
    assert_eq!(
        configuration["assignmentEmailEnabled"],
        serde_json::Value::Null
    );
    cli.run(&["config", "set"]).await.exited(2);

    let ran = cli
        .run(&["operation", "list", "--phone-number", CP_0101, "-o", "json"])
        .await;
    let operations = ran.succeeded().json()["operations"].clone();
    let id = operations[0]["id"]
        .as_str()
        .expect("an operation")
        .to_owned();
    let ran = cli.run(&["operation", "retry", &id]).await;
    assert!(
        ran.exited(3).stderr.contains("OPERATION_NOT_RETRYABLE"),
        "{ran:#?}"
    );
    let ran = cli.run(&["operation", "cancel", &id]).await;
    assert!(
        ran.exited(3).stderr.contains("OPERATION_NOT_CANCELLABLE"),
        "{ran:#?}"
    );
}
