//! The commands around the numbers: logging in, users, emergency locations, the audit trail.

use super::numbers::{Paging, more};
use super::output::{Format, audit_table, json, locations_table, print_json, users_table};
use super::{Common, Outcome, Saved, connection, request_id};
use crate::proto::v1 as pb;

/// Checks the settings against the server (a read any role may make), then keeps them.
pub(super) async fn login(common: Common) -> Outcome {
    let settings = common.connection.resolved()?;
    if settings.token.is_none() {
        return Err(anyhow::anyhow!("give the token to keep: --token or NUMBERS_TOKEN").into());
    }
    let mut client = connection::client(&settings)?;
    client
        .get_tenant_configuration(pb::GetTenantConfigurationRequest {})
        .await?;
    let path = Saved::path()?;
    settings.store(&path)?;
    println!(
        "logged in to {}; kept in {}",
        settings
            .server
            .as_deref()
            .unwrap_or(connection::DEFAULT_SERVER),
        path.display()
    );
    Ok(())
}

/// Deletes what `numbers login` kept.
pub(super) fn logout() -> Outcome {
    let path = Saved::path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => println!("forgot the login kept in {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("not logged in"),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot delete {}", path.display()))
                .into());
        }
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Users whose display name or user principal name starts with this text.
    Search {
        /// The start of the name (case-insensitive); empty for all.
        #[arg(default_value = "")]
        text: String,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        common: Common,
    },
    /// One user, with the numbers they hold.
    Get {
        /// User principal name, id or sip: address.
        identity: String,
        #[command(flatten)]
        common: Common,
    },
}

impl UsersCommand {
    pub(super) fn common(&self) -> &Common {
        match self {
            Self::Search { common, .. } | Self::Get { common, .. } => common,
        }
    }
}

pub(super) async fn users(command: UsersCommand) -> Outcome {
    let common = command.common().clone();
    let client = connection::client(&common.connection.resolved()?)?;
    match command {
        UsersCommand::Search { text, paging, .. } => {
            let (users, next_page_token) = paging
                .read(|page_size, page_token| {
                    let mut client = client.clone();
                    let request = pb::ListUsersRequest {
                        search: text.clone(),
                        page_size,
                        page_token,
                    };
                    async move {
                        let page = client.list_users(request).await?.into_inner();
                        Ok((page.users, page.next_page_token))
                    }
                })
                .await?;
            match common.output.output {
                Format::Json => print_json(&json(&pb::ListUsersResponse {
                    users,
                    next_page_token,
                })),
                Format::Table => {
                    println!("{}", users_table(&users));
                    more(&next_page_token);
                }
            }
        }
        UsersCommand::Get { identity, .. } => {
            let user = client
                .clone()
                .get_user(pb::GetUserRequest { identity })
                .await?
                .into_inner();
            match common.output.output {
                Format::Json => print_json(&json(&user)),
                Format::Table => println!("{}", users_table(&[user])),
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum LocationsCommand {
    /// The tenant's emergency locations, with their places (Get-CsOnlineLisLocation).
    List {
        /// Only locations in this city (case-insensitive).
        #[arg(long)]
        city: Option<String>,
        /// Only locations in this ISO 3166-1 country.
        #[arg(long)]
        country: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        common: Common,
    },
    /// Create an emergency location from its civic address (New-CsOnlineLisLocation); the
    /// address is validated and standardised.
    Create(CreateLocationArgs),
}

impl LocationsCommand {
    pub(super) fn common(&self) -> &Common {
        match self {
            Self::List { common, .. } => common,
            Self::Create(args) => &args.common,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateLocationArgs {
    /// What the location is, such as "Redmond HQ".
    #[arg(long)]
    description: Option<String>,
    /// The company at the address.
    #[arg(long)]
    company: String,
    /// The house number, such as 1.
    #[arg(long)]
    house_number: Option<String>,
    /// The street's name, such as "Microsoft Way".
    #[arg(long)]
    street: String,
    /// The street's suffix, such as Ave.
    #[arg(long)]
    street_suffix: Option<String>,
    #[arg(long)]
    city: String,
    /// The state or province, such as WA.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    postal_code: Option<String>,
    /// ISO 3166-1 country, such as US.
    #[arg(long)]
    country: String,
    /// Validate the address, create nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    common: Common,
}

pub(super) async fn locations(command: LocationsCommand) -> Outcome {
    let common = command.common().clone();
    let client = connection::client(&common.connection.resolved()?)?;
    match command {
        LocationsCommand::List {
            city,
            country,
            paging,
            ..
        } => {
            let (locations, next_page_token) = paging
                .read(|page_size, page_token| {
                    let mut client = client.clone();
                    let request = pb::ListEmergencyLocationsRequest {
                        city: city.clone().unwrap_or_default(),
                        country: country.clone().unwrap_or_default(),
                        page_size,
                        page_token,
                    };
                    async move {
                        let page = client.list_emergency_locations(request).await?.into_inner();
                        Ok((page.emergency_locations, page.next_page_token))
                    }
                })
                .await?;
            match common.output.output {
                Format::Json => print_json(&json(&pb::ListEmergencyLocationsResponse {
                    emergency_locations: locations,
                    next_page_token,
                })),
                Format::Table => {
                    println!("{}", locations_table(&locations));
                    more(&next_page_token);
                }
            }
        }
        LocationsCommand::Create(args) => {
            let location = client
                .clone()
                .create_emergency_location(pb::CreateEmergencyLocationRequest {
                    emergency_location: Some(pb::EmergencyLocation {
                        description: args.description.unwrap_or_default(),
                        address: Some(pb::CivicAddress {
                            company_name: args.company,
                            house_number: args.house_number.unwrap_or_default(),
                            street_name: args.street,
                            street_suffix: args.street_suffix.unwrap_or_default(),
                            city: args.city,
                            state_or_province: args.state.unwrap_or_default(),
                            postal_code: args.postal_code.unwrap_or_default(),
                            country: args.country,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    request_id: request_id(),
                    validate_only: args.validate_only,
                })
                .await?
                .into_inner();
            match common.output.output {
                Format::Json => print_json(&json(&location)),
                Format::Table => {
                    if args.validate_only {
                        println!("the address is valid (nothing created)");
                    } else {
                        println!("created emergency location {}", location.id);
                    }
                    println!("{}", locations_table(&[location]));
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only events of this number.
    #[arg(long)]
    phone_number: Option<String>,
    /// Only events of this user: user principal name or id.
    #[arg(long)]
    user: Option<String>,
    /// Only events at or after this time (RFC 3339, such as 2026-12-01T09:00:00Z).
    #[arg(long, value_parser = timestamp)]
    since: Option<prost_types::Timestamp>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_parser = timestamp)]
    until: Option<prost_types::Timestamp>,
    #[command(flatten)]
    paging: Paging,
    #[command(flatten)]
    pub common: Common,
}

/// An RFC 3339 time.
fn timestamp(text: &str) -> Result<prost_types::Timestamp, String> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time such as 2026-12-01T09:00:00Z: {e}"))?;
    Ok(prost_types::Timestamp {
        seconds: time.unix_timestamp(),
        nanos: i32::try_from(time.nanosecond()).unwrap_or(0),
    })
}

pub(super) async fn audit(args: AuditArgs) -> Outcome {
    let client = connection::client(&args.common.connection.resolved()?)?;
    let (events, next_page_token) = args
        .paging
        .read(|page_size, page_token| {
            let mut client = client.clone();
            let request = pb::ListAuditEventsRequest {
                phone_number: args.phone_number.clone().unwrap_or_default(),
                user: args.user.clone().unwrap_or_default(),
                start_time: args.since,
                end_time: args.until,
                page_size,
                page_token,
            };
            async move {
                let page = client.list_audit_events(request).await?.into_inner();
                Ok((page.audit_events, page.next_page_token))
            }
        })
        .await?;
    match args.common.output.output {
        Format::Json => print_json(&json(&pb::ListAuditEventsResponse {
            audit_events: events,
            next_page_token,
        })),
        Format::Table => {
            println!("{}", audit_table(&events));
            more(&next_page_token);
        }
    }
    Ok(())
}
