//! The Calling Plan adapter: the platform is the carrier, and sells numbers from a catalogue.
//!
//! The catalogue is a TOML file of number ranges (country, area code, city, user or service
//! numbers, toll-free or not). The repository ships one ([`DEFAULT_CATALOGUE`],
//! `adapters/calling-plan/catalogue.toml`); configuration may name another. The adapter lists
//! the whole stock in a stable order; which numbers are already taken is the service's to
//! know, since it holds every tenant's inventory and guarantees no number is sold twice.

use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use numbers_provider::{
    ActivationMode, AssignmentCheck, Capabilities, Capability, Descriptor, ErrorKind,
    LocationCheck, NumberQuery, NumberType, OfferedNumber, Progress, Provider, ProviderError,
    ProviderResult, Provisioning, TargetKind, check_location_lock,
};
use serde::Deserialize;

/// The catalogue the repository ships, used unless configuration names another.
pub const DEFAULT_CATALOGUE: &str = include_str!("../catalogue.toml");

/// The adapter's id, as numbers and configuration name it.
pub const ID: &str = "calling-plan";

/// The reason given when a user number of a country that requires it has no emergency
/// location.
pub const EMERGENCY_LOCATION_REQUIRED: &str = "EMERGENCY_LOCATION_REQUIRED";

/// Countries where a Calling Plan user number needs an emergency location once assigned.
const LOCATION_REQUIRED_IN: &[&str] = &["US", "CA"];

/// Most numbers one range may list.
const MAX_RANGE: u64 = 100_000;

/// Why a catalogue cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file cannot be read.
    #[error("cannot read the Calling Plan catalogue {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid catalogue.
    #[error("the Calling Plan catalogue is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    ranges: Vec<RangeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeFile {
    country: String,
    area_code: String,
    #[serde(default)]
    city: String,
    first: String,
    count: u64,
    usage: Usage,
    #[serde(default)]
    toll_free: bool,
}

/// What the numbers of a range are for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Usage {
    /// Subscriber numbers for people.
    User,
    /// Service numbers for voice applications and conferencing bridges.
    Service,
}

/// A range of consecutive numbers.
#[derive(Clone, Debug)]
struct Range {
    country: String,
    area_code: String,
    city: String,
    /// The country calling code with `+`, such as `+1`.
    prefix: String,
    /// The first national number, as digits.
    first: u64,
    /// The width of national numbers, to keep leading zeros.
    width: usize,
    count: u64,
    capabilities: Capabilities,
}

impl Range {
    fn number(&self, offset: u64) -> String {
        format!(
            "{}{:0width$}",
            self.prefix,
            self.first + offset,
            width = self.width
        )
    }

    /// The offset of `number` in the range, if it is one of its numbers.
    fn offset_of(&self, number: &str) -> Option<u64> {
        let national = number.strip_prefix(&self.prefix)?;
        if national.len() != self.width || !national.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u64 = national.parse().ok()?;
        (value >= self.first && value < self.first + self.count).then(|| value - self.first)
    }

    fn matches(&self, query: &NumberQuery) -> bool {
        self.country == query.country
            && query
                .area_code
                .as_ref()
                .is_none_or(|a| *a == self.area_code)
            && query
                .city
                .as_ref()
                .is_none_or(|c| c.to_lowercase() == self.city.to_lowercase())
            && query
                .capability
                .is_none_or(|c| self.capabilities.contains(c))
    }
}

/// The Calling Plan provider.
#[derive(Debug)]
pub struct CallingPlan {
    descriptor: Descriptor,
    ranges: Vec<Range>,
}

impl CallingPlan {
    /// The adapter over the catalogue the repository ships.
    pub fn with_default_catalogue() -> Self {
        Self::from_toml(DEFAULT_CATALOGUE).expect("the shipped catalogue is valid")
    }

    /// The adapter over the catalogue in the file at `path`.
    pub fn load(path: &Path) -> Result<Self, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// The adapter over a catalogue given as TOML text. Every number must be a valid number of
    /// its range's country and area code, and ranges must not overlap.
    pub fn from_toml(text: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile =
            toml::from_str(text).map_err(|e| CatalogueError::Invalid(e.message().to_owned()))?;
        let mut ranges = file
            .ranges
            .into_iter()
            .map(check_range)
            .collect::<Result<Vec<_>, _>>()?;
        ranges.sort_by_key(|r| r.number(0));
        let mut seen = HashSet::new();
        for range in &ranges {
            for offset in [0, range.count - 1] {
                if ranges
                    .iter()
                    .filter(|other| other.offset_of(&range.number(offset)).is_some())
                    .count()
                    > 1
                {
                    return Err(CatalogueError::Invalid(format!(
                        "{} is in more than one range",
                        range.number(offset)
                    )));
                }
            }
            seen.insert(range.country.clone());
        }
        let mut countries: Vec<String> = seen.into_iter().collect();
        countries.sort();
        Ok(Self {
            descriptor: Descriptor {
                id: ID.into(),
                display_name: "Calling Plan".into(),
                number_type: NumberType::CallingPlan,
                countries,
                tenant_location_update_allowed: true,
                activation: ActivationMode::Synchronous,
                base_and_extensions_exclusive: false,
                catalogue: true,
                lists_numbers: false,
            },
            ranges,
        })
    }

    /// The range holding `number`, if the catalogue sells it.
    fn range_of(&self, number: &str) -> Option<&Range> {
        self.ranges.iter().find(|r| r.offset_of(number).is_some())
    }

    fn not_found(&self, number: &str) -> ProviderError {
        ProviderError::new(
            ID,
            ErrorKind::NotFound,
            format!("{number} is not a Calling Plan number"),
        )
    }
}

fn check_range(range: RangeFile) -> Result<Range, CatalogueError> {
    let invalid = |why: String| CatalogueError::Invalid(format!("range {}: {why}", range.first));
    if range.count == 0 || range.count > MAX_RANGE {
        return Err(invalid(format!("count must be 1 to {MAX_RANGE}")));
    }
    let first = phonenumber::parse(None, &range.first)
        .map_err(|_| invalid("first is not an E.164 number".into()))?;
    let code = first.code().value();
    let prefix = format!("+{code}");
    let national = range
        .first
        .strip_prefix(&prefix)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| invalid("first must be written +<digits>".into()))?;
    if !national.starts_with(&range.area_code) {
        return Err(invalid(format!(
            "the numbers do not start with area code {}",
            range.area_code
        )));
    }
    let capabilities = match range.usage {
        Usage::User => [Capability::UserAssignment].into_iter().collect(),
        Usage::Service => [
            Capability::VoiceApplicationAssignment,
            Capability::ConferenceAssignment,
        ]
        .into_iter()
        .collect(),
    };
    if range.toll_free && range.usage == Usage::User {
        return Err(invalid("toll-free numbers are service numbers".into()));
    }
    let checked = Range {
        country: range.country.clone(),
        area_code: range.area_code.clone(),
        city: range.city.clone(),
        prefix,
        first: national
            .parse()
            .map_err(|_| invalid("first is too long".into()))?,
        width: national.len(),
        count: range.count,
        capabilities,
    };
    for offset in [0, range.count - 1] {
        let number = checked.number(offset);
        let parsed = phonenumber::parse(None, &number)
            .map_err(|_| invalid(format!("{number} is not a number")))?;
        if !parsed.is_valid() {
            return Err(invalid(format!("{number} is not a valid number")));
        }
        let region = parsed.country().id().map(|id| id.as_ref().to_owned());
        if region.as_deref() != Some(range.country.as_str()) {
            return Err(invalid(format!(
                "{number} is not a number of {}",
                range.country
            )));
        }
        if checked.number(offset).len() != number.len() {
            return Err(invalid("the range crosses a number length".into()));
        }
    }
    Ok(checked)
}

#[async_trait]
impl Provider for CallingPlan {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()> {
        check_location_lock(
            &self.descriptor,
            &check.phone_number,
            check.changes_emergency_location,
            check.location_update_supported,
        )?;
        if check.target_kind == TargetKind::User
            && LOCATION_REQUIRED_IN.contains(&check.country.as_str())
            && !check.has_emergency_location
        {
            return Err(ProviderError::refused(
                ID,
                EMERGENCY_LOCATION_REQUIRED,
                format!(
                    "Calling Plan user numbers in {} need an emergency location: give \
                     emergency_location_id when assigning {}",
                    check.country, check.phone_number
                ),
            ));
        }
        Ok(())
    }

    async fn check_location_update(&self, check: &LocationCheck) -> ProviderResult<()> {
        check_location_lock(
            &self.descriptor,
            &check.phone_number,
            true,
            check.location_update_supported,
        )?;
        if check.clears
            && check.assigned_to == Some(TargetKind::User)
            && LOCATION_REQUIRED_IN.contains(&check.country.as_str())
        {
            return Err(ProviderError::refused(
                ID,
                EMERGENCY_LOCATION_REQUIRED,
                format!(
                    "{} is assigned to a user in {}, where Calling Plan numbers need an \
                     emergency location; choose another location instead of clearing it",
                    check.phone_number, check.country
                ),
            ));
        }
        Ok(())
    }

    async fn activate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.range_of(&change.phone_number)
            .map(|_| Progress::Done)
            .ok_or_else(|| self.not_found(&change.phone_number))
    }

    async fn deactivate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.activate(change).await
    }

    async fn update_location(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.activate(change).await
    }

    async fn poll(&self, ticket: &str) -> ProviderResult<Progress> {
        // Every change is done at once, so no ticket is ever issued.
        Err(ProviderError::new(
            ID,
            ErrorKind::NotFound,
            format!("no pending change {ticket}"),
        ))
    }

    async fn search(
        &self,
        query: &NumberQuery,
        offset: usize,
        limit: usize,
    ) -> ProviderResult<Vec<OfferedNumber>> {
        let prefix = query.prefix.as_deref().unwrap_or("");
        let mut skip = offset as u64;
        let mut found = Vec::with_capacity(limit.min(1000));
        for range in self.ranges.iter().filter(|r| r.matches(query)) {
            // Offsets within the range whose numbers start with the prefix.
            let numbers = (0..range.count)
                .map(|i| range.number(i))
                .filter(|n| n.starts_with(prefix));
            for number in numbers {
                if found.len() == limit {
                    return Ok(found);
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                found.push(OfferedNumber {
                    phone_number: number,
                    country: range.country.clone(),
                    city: range.city.clone(),
                    capabilities: range.capabilities,
                });
            }
        }
        Ok(found)
    }

    async fn acquire(&self, _tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        match numbers.iter().find(|n| self.range_of(n).is_none()) {
            Some(unknown) => Err(self.not_found(unknown)),
            None => Ok(()),
        }
    }

    async fn release(&self, tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        self.acquire(tenant_id, numbers).await
    }
}

impl CallingPlan {
    /// The city of a catalogue number, when the catalogue names one.
    pub fn city_of(&self, number: &str) -> Option<&str> {
        self.range_of(number).map(|r| r.city.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_loads() {
        let catalogue = CallingPlan::with_default_catalogue();
        assert!(catalogue.descriptor().countries.contains(&"US".to_owned()));
        assert_eq!(catalogue.city_of("+14255550150"), Some("Redmond"));
        assert_eq!(catalogue.city_of("+14255559999"), None);
    }

    #[test]
    fn broken_catalogues_are_refused_with_a_reason() {
        let range = |first: &str, count: u64, area: &str| {
            format!(
                "[[ranges]]\ncountry = \"US\"\narea_code = \"{area}\"\nfirst = \"{first}\"\n\
                 count = {count}\nusage = \"user\"\n"
            )
        };
        for (text, why) in [
            (range("+14255550100", 0, "425"), "count"),
            (range("+14255550100", 10, "206"), "area code"),
            (range("+442079460000", 10, "20"), "not a number of US"),
            (range("12345", 10, "425"), "E.164"),
            (
                range("+14255550100", 10, "425") + &range("+14255550105", 10, "425"),
                "more than one range",
            ),
            ("ranges = 3".to_owned(), "invalid"),
        ] {
            let error = CallingPlan::from_toml(&text).unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
    }

    #[tokio::test]
    async fn searches_filter_by_area_code_city_prefix_and_usage() {
        let catalogue = CallingPlan::with_default_catalogue();
        let query = |area: Option<&str>, city: Option<&str>, prefix: Option<&str>, c| NumberQuery {
            country: "US".into(),
            area_code: area.map(Into::into),
            city: city.map(Into::into),
            prefix: prefix.map(Into::into),
            capability: Some(c),
        };
        let by_area = catalogue
            .search(
                &query(Some("206"), None, None, Capability::UserAssignment),
                0,
                3,
            )
            .await
            .unwrap();
        assert!(by_area.iter().all(|n| n.phone_number.starts_with("+1206")));
        let by_city = catalogue
            .search(
                &query(None, Some("redmond"), None, Capability::UserAssignment),
                0,
                3,
            )
            .await
            .unwrap();
        assert_eq!(by_city[0].city, "Redmond");
        let by_prefix = catalogue
            .search(
                &query(None, None, Some("+1425555016"), Capability::UserAssignment),
                0,
                100,
            )
            .await
            .unwrap();
        assert_eq!(by_prefix.len(), 10);
        let service = catalogue
            .search(
                &query(None, None, None, Capability::ConferenceAssignment),
                0,
                100,
            )
            .await
            .unwrap();
        assert!(!service.is_empty());
        assert!(
            service
                .iter()
                .all(|n| !n.capabilities.contains(Capability::UserAssignment))
        );
    }
}
