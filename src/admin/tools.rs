//! The admin's tools beyond the seeds' three operations: a number's emergency location, blocks
//! from assignment, transfers, tags, and the tenant's configuration.

use super::numbers::{Category, Paging, more};
use super::output::{Format, json, numbers_table, print_json, table};
use super::{Common, Outcome, connection, request_id};
use crate::proto::v1 as pb;

#[derive(Debug, clap::Args)]
pub struct LocateArgs {
    /// The number.
    phone_number: String,
    /// The emergency location to register; leave out to clear it where the provider allows.
    #[arg(long)]
    location: Option<String>,
    /// The number's etag as last read: refused (ABORTED) if it changed since.
    #[arg(long)]
    etag: Option<String>,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Prints a number a command answered, with a sentence when it only validated.
fn print_number(number: &pb::PhoneNumber, validate_only: bool, format: Format) {
    match format {
        Format::Json => print_json(&json(number)),
        Format::Table => {
            if validate_only {
                println!("the change is allowed (nothing changed)");
            }
            println!("{}", numbers_table(std::slice::from_ref(number)));
        }
    }
}

/// Sets a number's emergency location (Set-CsPhoneNumberAssignment -LocationId).
pub(super) async fn locate(args: LocateArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let number = client
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: args.phone_number,
            emergency_location_id: args.location.unwrap_or_default(),
            etag: args.etag.unwrap_or_default(),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    print_number(&number, args.validate_only, args.common.output.output);
    Ok(())
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("how_long").required(true).args(["days", "forever"])))]
pub struct BlockArgs {
    /// The number, unassigned.
    phone_number: String,
    /// Block it for this many days, 1 to 365 (-BlockUntil).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=365))]
    days: Option<i32>,
    /// Block it until the block is lifted.
    #[arg(long)]
    forever: bool,
    /// The number's etag as last read: refused (ABORTED) if it changed since.
    #[arg(long)]
    etag: Option<String>,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Blocks a number from assignment (Set-CsPhoneNumberAssignmentBlock).
pub(super) async fn block(args: BlockArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let number = client
        .set_assignment_block(pb::SetAssignmentBlockRequest {
            phone_number: args.phone_number,
            block_days: args.days.unwrap_or_default(),
            block_forever: args.forever,
            etag: args.etag.unwrap_or_default(),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    print_number(&number, args.validate_only, args.common.output.output);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct UnblockArgs {
    /// The number.
    phone_number: String,
    /// The number's etag as last read: refused (ABORTED) if it changed since.
    #[arg(long)]
    etag: Option<String>,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Lifts a number's block (Remove-CsPhoneNumberAssignmentBlock).
pub(super) async fn unblock(args: UnblockArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let number = client
        .remove_assignment_block(pb::RemoveAssignmentBlockRequest {
            phone_number: args.phone_number,
            etag: args.etag.unwrap_or_default(),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    print_number(&number, args.validate_only, args.common.output.output);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// The number.
    phone_number: String,
    /// Its current holder: user principal name, id or sip: address.
    #[arg(long)]
    from: String,
    /// The new holder.
    #[arg(long)]
    to: String,
    /// The number's role for the new holder [default: the role it has].
    #[arg(long, value_enum)]
    category: Option<Category>,
    /// Do not email the users about the move.
    #[arg(long)]
    no_notify: bool,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Moves a number from one holder to another in one step.
pub(super) async fn transfer(args: TransferArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let answer = client
        .transfer_phone_number(pb::TransferPhoneNumberRequest {
            phone_number: args.phone_number,
            from_identity: args.from.clone(),
            to_identity: args.to.clone(),
            assignment_category: args
                .category
                .map(pb::AssignmentCategory::from)
                .unwrap_or_default() as i32,
            notify_user: args.no_notify.then_some(false),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    match args.common.output.output {
        Format::Json => print_json(&json(&answer)),
        Format::Table => {
            let number = answer.phone_number.unwrap_or_default();
            let verb = if args.validate_only {
                "can move"
            } else {
                "moved"
            };
            println!(
                "{verb} {} from {} to {}{}",
                number.phone_number,
                args.from,
                args.to,
                if args.validate_only {
                    " (nothing changed)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum TagsCommand {
    /// Tag numbers, all or none (Set-CsPhoneNumberTag).
    Add(TagArgs),
    /// Take tags off numbers (Remove-CsPhoneNumberTag).
    Remove(TagArgs),
    /// The tenant's tags, with how many numbers carry each (Get-CsPhoneNumberTag).
    List {
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        common: Common,
    },
}

impl TagsCommand {
    pub(super) fn common(&self) -> &Common {
        match self {
            Self::Add(args) | Self::Remove(args) => &args.common,
            Self::List { common, .. } => common,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The numbers, up to 1,000.
    #[arg(required = true)]
    phone_numbers: Vec<String>,
    /// A tag; repeat for several.
    #[arg(long = "tag", required = true)]
    tags: Vec<String>,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    common: Common,
}

pub(super) async fn tags(command: TagsCommand) -> Outcome {
    let format = command.common().output.output;
    let client = connection::client(&command.common().connection.resolved()?)?;
    let numbers = match command {
        TagsCommand::Add(args) => {
            client
                .clone()
                .add_phone_number_tags(pb::AddPhoneNumberTagsRequest {
                    phone_numbers: args.phone_numbers,
                    tags: args.tags,
                    request_id: request_id(),
                    validate_only: args.validate_only,
                })
                .await?
                .into_inner()
                .phone_numbers
        }
        TagsCommand::Remove(args) => {
            client
                .clone()
                .remove_phone_number_tags(pb::RemovePhoneNumberTagsRequest {
                    phone_numbers: args.phone_numbers,
                    tags: args.tags,
                    request_id: request_id(),
                    validate_only: args.validate_only,
                })
                .await?
                .into_inner()
                .phone_numbers
        }
        TagsCommand::List { paging, .. } => {
            let (tags, next_page_token) = paging
                .read(|page_size, page_token| {
                    let mut client = client.clone();
                    async move {
                        let page = client
                            .list_tags(pb::ListTagsRequest {
                                page_size,
                                page_token,
                            })
                            .await?
                            .into_inner();
                        Ok((page.tags, page.next_page_token))
                    }
                })
                .await?;
            match format {
                Format::Json => print_json(&json(&pb::ListTagsResponse {
                    tags,
                    next_page_token,
                })),
                Format::Table => {
                    let mut listed = table(["tag", "numbers"]);
                    for tag in tags {
                        listed.add_row([tag.name, tag.phone_number_count.to_string()]);
                    }
                    println!("{listed}");
                    more(&next_page_token);
                }
            }
            return Ok(());
        }
    };
    match format {
        Format::Json => print_json(&json(&pb::AddPhoneNumberTagsResponse {
            phone_numbers: numbers,
        })),
        Format::Table => println!("{}", numbers_table(&numbers)),
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// The tenant's defaults: emails on assignment and removal, a removal's block.
    Get {
        #[command(flatten)]
        common: Common,
    },
    /// Change the defaults given; the others stay as they are.
    Set(ConfigSetArgs),
}

impl ConfigCommand {
    pub(super) fn common(&self) -> &Common {
        match self {
            Self::Get { common } => common,
            Self::Set(args) => &args.common,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("setting").required(true).multiple(true)))]
pub struct ConfigSetArgs {
    /// Email users about a number assigned to them, unless a request says otherwise.
    #[arg(long, group = "setting")]
    assignment_email: Option<bool>,
    /// Email users about a number removed from them, unless a request says otherwise.
    #[arg(long, group = "setting")]
    unassignment_email: Option<bool>,
    /// Block removed numbers for this many days, 0 (no block) to 365, unless a request says.
    #[arg(long, group = "setting", value_parser = clap::value_parser!(i32).range(0..=365))]
    removal_block_days: Option<i32>,
    /// Block removed numbers until lifted, unless a request says otherwise.
    #[arg(long, group = "setting")]
    removal_block_forever: Option<bool>,
    /// The configuration's etag as last read: refused (ABORTED) if it changed since.
    #[arg(long)]
    etag: Option<String>,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    common: Common,
}

fn print_configuration(configuration: &pb::TenantConfiguration, format: Format) {
    match format {
        Format::Json => print_json(&json(configuration)),
        Format::Table => {
            let mut shown = table(["setting", "value"]);
            shown
                .add_row([
                    "assignment email",
                    &configuration.assignment_email_enabled.to_string(),
                ])
                .add_row([
                    "unassignment email",
                    &configuration.unassignment_email_enabled.to_string(),
                ])
                .add_row([
                    "removal block days",
                    &configuration.removal_block_days.to_string(),
                ])
                .add_row([
                    "removal block forever",
                    &configuration.removal_block_forever.to_string(),
                ])
                .add_row(["etag", &configuration.etag]);
            println!("{shown}");
        }
    }
}

/// Reads or changes the tenant's configuration, sending only the fields given (an update mask).
pub(super) async fn config(command: ConfigCommand) -> Outcome {
    let format = command.common().output.output;
    let mut client = connection::client(&command.common().connection.resolved()?)?;
    let configuration = match command {
        ConfigCommand::Get { .. } => client
            .get_tenant_configuration(pb::GetTenantConfigurationRequest {})
            .await?
            .into_inner(),
        ConfigCommand::Set(args) => {
            let mut paths = Vec::new();
            let mut wanted = pb::TenantConfiguration {
                etag: args.etag.unwrap_or_default(),
                ..Default::default()
            };
            if let Some(value) = args.assignment_email {
                wanted.assignment_email_enabled = value;
                paths.push("assignment_email_enabled".to_owned());
            }
            if let Some(value) = args.unassignment_email {
                wanted.unassignment_email_enabled = value;
                paths.push("unassignment_email_enabled".to_owned());
            }
            if let Some(value) = args.removal_block_days {
                wanted.removal_block_days = value;
                paths.push("removal_block_days".to_owned());
            }
            if let Some(value) = args.removal_block_forever {
                wanted.removal_block_forever = value;
                paths.push("removal_block_forever".to_owned());
            }
            client
                .update_tenant_configuration(pb::UpdateTenantConfigurationRequest {
                    tenant_configuration: Some(wanted),
                    update_mask: Some(prost_types::FieldMask { paths }),
                    request_id: request_id(),
                    validate_only: args.validate_only,
                })
                .await?
                .into_inner()
        }
    };
    print_configuration(&configuration, format);
    Ok(())
}
