"""OCPI 2.2.1 object models (pydantic 2), after the spec at tag ``v2.2.1-d2``.

Cardinality mapping: ``1`` -> required field, ``?`` -> ``X | None = None``,
``*`` -> ``list[X] | None = None``, ``+`` -> required list with at least one
item. Every model tolerates unknown properties (``extra="allow"``): the hub
forwards bodies unmodified and only *checks* them, it stores the original
dict, never a re-serialised model.

The scalar types mirror ``types.asciidoc``:

* :func:`CiString` - printable ASCII (U+0020-U+007E), at most *n* characters;
* :func:`String` - printable UTF-8 without control characters, at most *n*;
* :data:`URL` - ``String(255)``;
* :data:`DateTime` - RFC 3339 in UTC, either with ``Z`` or without a zone
  designator, optional fractional seconds, at most 25 characters; offsets such
  as ``+00:00`` are rejected. The value stays the original string;
* :data:`Number` - a JSON number (int or float, never a bool);
* :data:`Int` / :data:`Boolean` - strict JSON integers / booleans.

Nothing but the spec's own limits is enforced; cross-field rules (e.g.
``credit_reference_id`` required when ``credit`` is true) are left to the
modules that need them.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "CDR",
    "CI_STRING_PATTERN",
    "COMMAND_MODELS",
    "DATETIME_MAX_LENGTH",
    "DATETIME_PATTERN",
    "DATE_PATTERN",
    "EVSE",
    "LATITUDE_PATTERN",
    "LONGITUDE_PATTERN",
    "MODELS",
    "STRING_PATTERN",
    "TIME_OF_DAY_PATTERN",
    "URL",
    "AdditionalGeoLocation",
    "AllowedType",
    "AuthMethod",
    "AuthorizationInfo",
    "Boolean",
    "BusinessDetails",
    "CancelReservation",
    "Capability",
    "CdrDimension",
    "CdrDimensionType",
    "CdrLocation",
    "CdrToken",
    "ChargingPeriod",
    "ChargingPreferences",
    "ChargingPreferencesResponse",
    "CiString",
    "ClientInfo",
    "CommandResponse",
    "CommandResponseType",
    "CommandResult",
    "CommandResultType",
    "CommandType",
    "ConnectionStatus",
    "Connector",
    "ConnectorFormat",
    "ConnectorType",
    "Credentials",
    "CredentialsRole",
    "DateTime",
    "DayOfWeek",
    "DisplayText",
    "Endpoint",
    "EnergyContract",
    "EnergyMix",
    "EnergySource",
    "EnergySourceCategory",
    "EnvironmentalImpact",
    "EnvironmentalImpactCategory",
    "ExceptionalPeriod",
    "ActiveChargingProfile",
    "ActiveChargingProfileResult",
    "ChargingProfile",
    "ChargingProfilePeriod",
    "ChargingProfileResponse",
    "ChargingProfileResponseType",
    "ChargingProfileResult",
    "ChargingProfileResultType",
    "ChargingRateUnit",
    "ClearProfileResult",
    "SetChargingProfile",
    "Facility",
    "GeoLocation",
    "Hours",
    "Image",
    "ImageCategory",
    "Int",
    "InterfaceRole",
    "Location",
    "LocationReferences",
    "ModuleID",
    "Number",
    "OcpiModel",
    "ParkingRestriction",
    "ParkingType",
    "PowerType",
    "Price",
    "PriceComponent",
    "ProfileType",
    "PublishTokenType",
    "RegularHours",
    "ReservationRestrictionType",
    "ReserveNow",
    "Role",
    "Session",
    "SessionStatus",
    "SignedData",
    "SignedValue",
    "StartSession",
    "Status",
    "StatusSchedule",
    "StopSession",
    "String",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffRestrictions",
    "TariffType",
    "Token",
    "TokenType",
    "UnlockConnector",
    "Version",
    "VersionDetails",
    "VersionNumber",
    "WhitelistType",
]

# --------------------------------------------------------------------------
# Scalar types (types.asciidoc)
# --------------------------------------------------------------------------

#: CiString: printable ASCII only, U+0020 up to and including U+007E.
CI_STRING_PATTERN = r"^[\x20-\x7E]*$"
#: string: printable UTF-8; C0 controls (incl. CR, LF, TAB), DEL and C1 controls are refused.
STRING_PATTERN = r"^[^\x00-\x1F\x7F-\x9F]*$"
#: The DateTime forms the spec lists: ``Z`` or no zone designator, optional fraction.
DATETIME_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z?$"
)
#: DateTime is ``string(25)`` in the spec.
DATETIME_MAX_LENGTH = 25
#: GeoLocation regexes as given in mod_locations (anchored).
LATITUDE_PATTERN = r"^-?[0-9]{1,2}\.[0-9]{5,7}$"
LONGITUDE_PATTERN = r"^-?[0-9]{1,3}\.[0-9]{5,7}$"
#: ``hh:mm`` 24h, leading zeros (RegularHours, TariffRestrictions).
TIME_OF_DAY_PATTERN = r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$"
#: ``YYYY-MM-DD`` (TariffRestrictions start_date / end_date).
DATE_PATTERN = r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


def CiString(max_length: int) -> Any:
    """``CiString(n)``: case-insensitive, printable ASCII, at most *max_length* chars."""
    return Annotated[
        str, StringConstraints(max_length=max_length, pattern=CI_STRING_PATTERN)
    ]


def String(max_length: int) -> Any:
    """``string(n)``: printable UTF-8 without control characters, at most *max_length*."""
    return Annotated[
        str, StringConstraints(max_length=max_length, pattern=STRING_PATTERN)
    ]


def _check_calendar(value: str) -> str:
    # The pattern already fixed the shape; this only refuses impossible dates (Feb 30).
    try:
        datetime.fromisoformat(value[:19])
    except ValueError:
        raise PydanticCustomError(
            "ocpi_datetime", "not a valid calendar date"
        ) from None
    return value


URL = String(255)
DateTime = Annotated[
    str,
    StringConstraints(max_length=DATETIME_MAX_LENGTH, pattern=DATETIME_PATTERN),
    AfterValidator(_check_calendar),
]
#: JSON number; ints are accepted (and become floats), bools and strings are not.
Number = Annotated[float, Strict(), AllowInfNan(False)]
Int = Annotated[int, Strict()]
Boolean = Annotated[bool, Strict()]

Latitude = Annotated[str, StringConstraints(max_length=10, pattern=LATITUDE_PATTERN)]
Longitude = Annotated[str, StringConstraints(max_length=11, pattern=LONGITUDE_PATTERN)]
TimeOfDay = Annotated[str, StringConstraints(max_length=5, pattern=TIME_OF_DAY_PATTERN)]
Date = Annotated[str, StringConstraints(max_length=10, pattern=DATE_PATTERN)]


def _open_enum(enum_cls: type[StrEnum], max_length: int) -> Any:
    """A CiString that becomes *enum_cls* when it is a known value, else stays a str.

    For enums the spec declares extensible (custom ModuleIDs) or that grow with
    later OCPI versions (version numbers announced by a peer).
    """
    known = {member.value: member for member in enum_cls}

    def to_member(value: str) -> str:
        return known.get(value, value)

    return Annotated[
        str,
        StringConstraints(
            min_length=1, max_length=max_length, pattern=CI_STRING_PATTERN
        ),
        AfterValidator(to_member),
    ]


# --------------------------------------------------------------------------
# Base
# --------------------------------------------------------------------------


class OcpiModel(BaseModel):
    """Base of every OCPI object: unknown properties are kept, not rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------
# Shared classes and enums (types.asciidoc)
# --------------------------------------------------------------------------


class Role(StrEnum):
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class DisplayText(OcpiModel):
    language: String(2)  # ISO 639-1
    text: String(512)  # plain text, no markup


class Price(OcpiModel):
    excl_vat: Number
    incl_vat: Number | None = None


# --------------------------------------------------------------------------
# Versions (version_information_endpoint.asciidoc)
# --------------------------------------------------------------------------


class VersionNumber(StrEnum):
    V2_0 = "2.0"
    V2_1 = "2.1"
    V2_1_1 = "2.1.1"
    V2_2 = "2.2"
    V2_2_1 = "2.2.1"


class ModuleID(StrEnum):
    CDRS = "cdrs"
    CHARGING_PROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUB_CLIENT_INFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class Version(OcpiModel):
    # A peer's version list may name versions newer than 2.2.1; known ones
    # become VersionNumber members, others stay plain strings.
    version: _open_enum(VersionNumber, 32)
    url: URL


class Endpoint(OcpiModel):
    # ModuleID may be extended with custom, bilaterally agreed module ids.
    identifier: _open_enum(ModuleID, 255)
    role: InterfaceRole
    url: URL


class VersionDetails(OcpiModel):
    version: VersionNumber
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]


# --------------------------------------------------------------------------
# Credentials (credentials.asciidoc) - Image/BusinessDetails live in locations
# --------------------------------------------------------------------------


class ImageCategory(StrEnum):
    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class Image(OcpiModel):
    url: URL
    thumbnail: URL | None = None
    category: ImageCategory
    type: CiString(4)
    width: Annotated[int, Strict(), Field(ge=0, le=99999)] | None = None  # int(5)
    height: Annotated[int, Strict(), Field(ge=0, le=99999)] | None = None  # int(5)


class BusinessDetails(OcpiModel):
    name: String(100)
    website: URL | None = None
    logo: Image | None = None


class CredentialsRole(OcpiModel):
    role: Role
    business_details: BusinessDetails
    party_id: CiString(3)
    country_code: CiString(2)


class Credentials(OcpiModel):
    token: String(64)
    url: URL
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]


# --------------------------------------------------------------------------
# Hub client info (mod_hub_client_info.asciidoc)
# --------------------------------------------------------------------------


class ConnectionStatus(StrEnum):
    CONNECTED = "CONNECTED"
    OFFLINE = "OFFLINE"
    PLANNED = "PLANNED"
    SUSPENDED = "SUSPENDED"


class ClientInfo(OcpiModel):
    party_id: CiString(3)
    country_code: CiString(2)
    role: Role
    status: ConnectionStatus
    last_updated: DateTime


# --------------------------------------------------------------------------
# Tokens enums needed early (PublishTokenType uses TokenType)
# --------------------------------------------------------------------------


class TokenType(StrEnum):
    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class ProfileType(StrEnum):
    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


# --------------------------------------------------------------------------
# Locations (mod_locations.asciidoc)
# --------------------------------------------------------------------------


class Capability(StrEnum):
    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorFormat(StrEnum):
    SOCKET = "SOCKET"
    CABLE = "CABLE"


class ConnectorType(StrEnum):
    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class EnergySourceCategory(StrEnum):
    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class EnvironmentalImpactCategory(StrEnum):
    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class Facility(StrEnum):
    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class ParkingRestriction(StrEnum):
    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"


class ParkingType(StrEnum):
    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class PowerType(StrEnum):
    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class Status(StrEnum):
    """EVSE status."""

    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


class GeoLocation(OcpiModel):
    """Decimal degrees as *strings* (not JSON numbers), "." as separator."""

    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class PublishTokenType(OcpiModel):
    uid: CiString(36) | None = None
    type: TokenType | None = None
    visual_number: String(64) | None = None
    issuer: String(64) | None = None
    group_id: CiString(36) | None = None


class StatusSchedule(OcpiModel):
    period_begin: DateTime
    period_end: DateTime | None = None
    status: Status


class RegularHours(OcpiModel):
    weekday: Annotated[int, Strict(), Field(ge=1, le=7)]  # Monday (1) .. Sunday (7)
    period_begin: TimeOfDay
    period_end: TimeOfDay


class ExceptionalPeriod(OcpiModel):
    period_begin: DateTime
    period_end: DateTime


class Hours(OcpiModel):
    twentyfourseven: Boolean
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None


class EnergySource(OcpiModel):
    source: EnergySourceCategory
    percentage: Annotated[float, Strict(), AllowInfNan(False), Field(ge=0, le=100)]


class EnvironmentalImpact(OcpiModel):
    category: EnvironmentalImpactCategory
    amount: Number  # g/kWh


class EnergyMix(OcpiModel):
    is_green_energy: Boolean
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: String(64) | None = None
    energy_product_name: String(64) | None = None


class Connector(OcpiModel):
    id: CiString(36)
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: Int
    max_amperage: Int
    max_electric_power: Int | None = None
    tariff_ids: list[CiString(36)] | None = None
    terms_and_conditions: URL | None = None
    last_updated: DateTime


class EVSE(OcpiModel):
    uid: CiString(36)
    evse_id: CiString(48) | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: String(4) | None = None
    coordinates: GeoLocation | None = None
    physical_reference: String(16) | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: DateTime


class Location(OcpiModel):
    country_code: CiString(2)
    party_id: CiString(3)
    id: CiString(36)
    publish: Boolean
    publish_allowed_to: list[PublishTokenType] | None = None
    name: String(255) | None = None
    address: String(255)  # 2.2.1 errata: 255 (the first 2.2.1 text said 45)
    city: String(45)
    postal_code: String(10) | None = None
    state: String(45) | None = None  # 2.2.1 errata: 45 (the first 2.2.1 text said 20)
    country: String(3)  # ISO 3166-1 alpha-3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String(255)  # IANA tz, e.g. "Asia/Kolkata"
    opening_times: Hours | None = None
    charging_when_closed: Boolean | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


# --------------------------------------------------------------------------
# Tariffs (mod_tariffs.asciidoc)
# --------------------------------------------------------------------------


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class ReservationRestrictionType(StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class TariffDimensionType(StrEnum):
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class TariffType(StrEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class PriceComponent(OcpiModel):
    type: TariffDimensionType
    price: Number  # per unit, excl. VAT
    vat: Number | None = None  # percentage; absent = no VAT applicable (differs from 0)
    step_size: Int


class TariffRestrictions(OcpiModel):
    start_time: TimeOfDay | None = None
    end_time: TimeOfDay | None = None
    start_date: Date | None = None
    end_date: Date | None = None
    min_kwh: Number | None = None
    max_kwh: Number | None = None
    min_current: Number | None = None
    max_current: Number | None = None
    min_power: Number | None = None
    max_power: Number | None = None
    min_duration: Int | None = None
    max_duration: Int | None = None
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None


class TariffElement(OcpiModel):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: TariffRestrictions | None = None


class Tariff(OcpiModel):
    country_code: CiString(2)
    party_id: CiString(3)
    id: CiString(36)
    currency: String(3)  # ISO 4217
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: URL | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


# --------------------------------------------------------------------------
# Tokens (mod_tokens.asciidoc)
# --------------------------------------------------------------------------


class AllowedType(StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class WhitelistType(StrEnum):
    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class EnergyContract(OcpiModel):
    supplier_name: String(64)
    contract_id: String(64) | None = None


class Token(OcpiModel):
    country_code: CiString(2)
    party_id: CiString(3)
    uid: CiString(36)
    type: TokenType
    contract_id: CiString(36)
    visual_number: String(64) | None = None
    issuer: String(64)
    group_id: CiString(36) | None = None
    valid: Boolean
    whitelist: WhitelistType
    language: String(2) | None = None  # ISO 639-1
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class LocationReferences(OcpiModel):
    location_id: CiString(36)
    evse_uids: list[CiString(36)] | None = None


class AuthorizationInfo(OcpiModel):
    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString(36) | None = None
    info: DisplayText | None = None


# --------------------------------------------------------------------------
# Sessions and CDRs (mod_sessions.asciidoc, mod_cdrs.asciidoc)
# --------------------------------------------------------------------------


class AuthMethod(StrEnum):
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class CdrDimensionType(StrEnum):
    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


class SessionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class ChargingPreferencesResponse(StrEnum):
    ACCEPTED = "ACCEPTED"
    DEPARTURE_REQUIRED = "DEPARTURE_REQUIRED"
    ENERGY_NEED_REQUIRED = "ENERGY_NEED_REQUIRED"
    NOT_POSSIBLE = "NOT_POSSIBLE"
    PROFILE_TYPE_NOT_SUPPORTED = "PROFILE_TYPE_NOT_SUPPORTED"


class CdrDimension(OcpiModel):
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(OcpiModel):
    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: CiString(36) | None = None


class CdrToken(OcpiModel):
    """Token reference in a Session/CDR; country_code/party_id are the eMSP's."""

    country_code: CiString(2)
    party_id: CiString(3)
    uid: CiString(36)
    type: TokenType
    contract_id: CiString(36)


class CdrLocation(OcpiModel):
    id: CiString(36)
    name: String(255) | None = None
    # The CDR copies the Location's address and state, which the errata lengthened to 255 and 45:
    # a CDR is never refused for a longer address than the CDR table's 45 (refusing it stops billing).
    address: String(255)
    city: String(45)
    postal_code: String(10) | None = None
    state: String(45) | None = None
    country: String(3)
    coordinates: GeoLocation
    evse_uid: CiString(36)
    evse_id: CiString(48)
    connector_id: CiString(36)
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class ChargingPreferences(OcpiModel):
    profile_type: ProfileType
    departure_time: DateTime | None = None
    energy_need: Number | None = None
    discharge_allowed: Boolean | None = None


class Session(OcpiModel):
    country_code: CiString(2)
    party_id: CiString(3)
    id: CiString(36)
    start_date_time: DateTime
    end_date_time: DateTime | None = None
    kwh: Number
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString(36) | None = None
    location_id: CiString(36)
    evse_uid: CiString(36)  # may be "#NA" for a reservation without EVSE
    connector_id: CiString(36)  # may be "#NA" likewise
    meter_id: String(255) | None = None
    currency: String(3)
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: DateTime


class SignedValue(OcpiModel):
    nature: CiString(32)
    plain_data: String(5000)  # 2.2.1 errata: 5000 (the first 2.2.1 text said 512)
    signed_data: String(5000)


class SignedData(OcpiModel):
    encoding_method: CiString(36)
    encoding_method_version: Int | None = None
    public_key: String(512) | None = None
    signed_values: Annotated[list[SignedValue], Field(min_length=1)]
    url: String(512) | None = None


class CDR(OcpiModel):
    country_code: CiString(2)
    party_id: CiString(3)
    id: CiString(39)  # 39 leaves room for a credit CDR suffix
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: CiString(36) | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString(36) | None = None
    cdr_location: CdrLocation
    meter_id: String(255) | None = None
    currency: String(3)
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Number
    total_energy_cost: Price | None = None
    total_time: Number
    total_time_cost: Price | None = None
    total_parking_time: Number | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: String(255) | None = None
    invoice_reference_id: CiString(39) | None = None
    credit: Boolean | None = None
    credit_reference_id: CiString(39) | None = None
    home_charging_compensation: Boolean | None = None
    last_updated: DateTime


# --------------------------------------------------------------------------
# Commands (mod_commands.asciidoc)
# --------------------------------------------------------------------------


class CommandType(StrEnum):
    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class CancelReservation(OcpiModel):
    response_url: URL
    reservation_id: CiString(36)


class ReserveNow(OcpiModel):
    response_url: URL
    token: Token
    expiry_date: DateTime
    reservation_id: CiString(36)
    location_id: CiString(36)
    evse_uid: CiString(36) | None = None
    authorization_reference: CiString(36) | None = None


class StartSession(OcpiModel):
    response_url: URL
    token: Token
    location_id: CiString(36)
    evse_uid: CiString(36) | None = None  # required when connector_id is set
    connector_id: CiString(36) | None = None
    authorization_reference: CiString(36) | None = None


class StopSession(OcpiModel):
    response_url: URL
    session_id: CiString(36)


class UnlockConnector(OcpiModel):
    response_url: URL
    location_id: CiString(36)
    evse_uid: CiString(36)
    connector_id: CiString(36)


class CommandResponse(OcpiModel):
    result: CommandResponseType
    timeout: Int  # seconds
    message: list[DisplayText] | None = None


class CommandResult(OcpiModel):
    result: CommandResultType
    message: list[DisplayText] | None = None


# --------------------------------------------------------------------------
# ChargingProfiles (mod_charging_profiles.asciidoc)
# --------------------------------------------------------------------------


class ChargingRateUnit(StrEnum):
    W = "W"
    A = "A"


class ChargingProfileResponseType(StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TOO_OFTEN = "TOO_OFTEN"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ChargingProfileResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


class ChargingProfilePeriod(OcpiModel):
    start_period: Int
    limit: Number


class ChargingProfile(OcpiModel):
    start_date_time: DateTime | None = None
    duration: Int | None = None
    charging_rate_unit: ChargingRateUnit
    min_charging_rate: Number | None = None
    charging_profile_period: list[ChargingProfilePeriod] | None = None


class SetChargingProfile(OcpiModel):
    charging_profile: ChargingProfile
    response_url: URL


class ActiveChargingProfile(OcpiModel):
    start_date_time: DateTime
    charging_profile: ChargingProfile


class ChargingProfileResponse(OcpiModel):
    result: ChargingProfileResponseType
    timeout: Int


class ActiveChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType
    profile: ActiveChargingProfile | None = None


class ChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType


class ClearProfileResult(OcpiModel):
    result: ChargingProfileResultType


# --------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------

#: Every object/class model by its OCPI name.
MODELS: dict[str, type[OcpiModel]] = {
    cls.__name__: cls
    for cls in (
        DisplayText,
        Price,
        Version,
        Endpoint,
        VersionDetails,
        Image,
        BusinessDetails,
        CredentialsRole,
        Credentials,
        ClientInfo,
        GeoLocation,
        AdditionalGeoLocation,
        PublishTokenType,
        StatusSchedule,
        RegularHours,
        ExceptionalPeriod,
        Hours,
        EnergySource,
        EnvironmentalImpact,
        EnergyMix,
        Connector,
        EVSE,
        Location,
        PriceComponent,
        TariffRestrictions,
        TariffElement,
        Tariff,
        EnergyContract,
        Token,
        LocationReferences,
        AuthorizationInfo,
        CdrDimension,
        ChargingPeriod,
        CdrToken,
        CdrLocation,
        ChargingPreferences,
        Session,
        SignedValue,
        SignedData,
        CDR,
        CancelReservation,
        ReserveNow,
        StartSession,
        StopSession,
        UnlockConnector,
        CommandResponse,
        CommandResult,
        ChargingProfilePeriod,
        ChargingProfile,
        SetChargingProfile,
        ActiveChargingProfile,
        ChargingProfileResponse,
        ActiveChargingProfileResult,
        ChargingProfileResult,
        ClearProfileResult,
    )
}

#: Request body model for ``POST {commands}/{command}``.
COMMAND_MODELS: dict[CommandType, type[OcpiModel]] = {
    CommandType.CANCEL_RESERVATION: CancelReservation,
    CommandType.RESERVE_NOW: ReserveNow,
    CommandType.START_SESSION: StartSession,
    CommandType.STOP_SESSION: StopSession,
    CommandType.UNLOCK_CONNECTOR: UnlockConnector,
}
