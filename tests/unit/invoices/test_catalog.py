from __future__ import annotations

from datetime import date

import pytest

from invoices.catalog import Catalog, CatalogEntry, CatalogError, Installment, Kind

CATALOG = Catalog.load_default()


def entry_toml(**overrides: str) -> str:
    """One [[entries]] table; each override replaces a line's right-hand side (TOML text)."""
    fields = {
        "code": '"DOG_LICENSE"',
        "name_ja": '"犬の登録手数料"',
        "name_en": '"Dog registration fee"',
        "kind": '"fee"',
        "revenue_account": '"4200:DOG_LICENSE"',
        "late_fee_applies": "false",
        "installments": "[]",
        "default_amount": "3000",
    }
    fields.update(overrides)
    lines = [f"{key} = {value}" for key, value in fields.items() if value != "<drop>"]
    return "[[entries]]\n" + "\n".join(lines) + "\n"


def tax_toml(code: str = "MINERAL", installments: str = "[]", **overrides: str) -> str:
    values = {
        "code": f'"{code}"',
        "kind": '"tax"',
        "revenue_account": f'"4100:{code}"',
        "late_fee_applies": "true",
        "installments": installments,
        "default_amount": "<drop>",
    }
    values.update(overrides)
    return entry_toml(**values)


def refused(text: str) -> str:
    with pytest.raises(CatalogError) as error:
        Catalog.from_toml(text)
    return error.value.code


# --- the packaged catalog ------------------------------------------------------------------


def test_default_catalog_seeds_the_common_taxes_and_fees() -> None:
    assert [entry.code for entry in CATALOG] == [
        "FIXED_ASSET",
        "CITY_PLANNING",
        "RESIDENT_TAX",
        "LIGHT_VEHICLE",
        "NHI_TAX",
        "RESIDENT_COPY",
        "SEAL_CERT",
        "KOSEKI_FULL",
        "BULKY_WASTE",
        "FACILITY_USE",
    ]
    assert len(CATALOG) == 10
    assert Catalog.load_default() is CATALOG


def test_accounts_follow_the_chart() -> None:
    fixed_asset = CATALOG.get("FIXED_ASSET")
    assert fixed_asset.name_ja == "固定資産税"
    assert fixed_asset.receivable_account == "1100:FIXED_ASSET"
    assert fixed_asset.revenue_account == "4100:FIXED_ASSET"
    copy = CATALOG.get("RESIDENT_COPY")
    assert (copy.receivable_account, copy.revenue_account) == (
        "1100:RESIDENT_COPY",
        "4200:RESIDENT_COPY",
    )


def test_taxes_carry_late_fees_and_fees_do_not() -> None:
    for entry in CATALOG:
        assert entry.late_fee_applies == (entry.kind is Kind.TAX), entry.code
        assert entry.late_fee_first_period_months == 1, entry.code


def test_fixed_price_fees() -> None:
    amounts = {entry.code: entry.default_amount for entry in CATALOG if entry.kind is Kind.FEE}
    assert amounts == {
        "RESIDENT_COPY": 300,
        "SEAL_CERT": 300,
        "KOSEKI_FULL": 450,
        "BULKY_WASTE": None,
        "FACILITY_USE": None,
    }


def test_fixed_asset_schedule_and_month_end_days() -> None:
    schedule = CATALOG.get("FIXED_ASSET").installments
    assert [item.nominal_due_date(2023) for item in schedule] == [
        date(2023, 4, 30),
        date(2023, 7, 31),
        date(2023, 12, 25),
        date(2024, 2, 29),  # 末日 in a leap year; February falls in the next calendar year
    ]
    assert schedule[3].nominal_due_date(2024) == date(2025, 2, 28)


def test_installment_counts() -> None:
    counts = {entry.code: len(entry.installments) for entry in CATALOG}
    assert counts["RESIDENT_TAX"] == 4
    assert counts["LIGHT_VEHICLE"] == 1
    assert 8 <= counts["NHI_TAX"] <= 10
    assert CATALOG.get("RESIDENT_TAX").installment(4).nominal_due_date(2025) == date(2026, 1, 31)


def test_membership() -> None:
    assert "NHI_TAX" in CATALOG
    assert "NOPE" not in CATALOG


# --- refusals ------------------------------------------------------------------------------


def test_unknown_code_is_refused() -> None:
    with pytest.raises(CatalogError) as error:
        CATALOG.get("INCOME_TAX")
    assert error.value.code == "catalog.unknown_code"
    assert error.value.detail["entry"] == "INCOME_TAX"


def test_unknown_installment_is_refused() -> None:
    with pytest.raises(CatalogError) as error:
        CATALOG.get("LIGHT_VEHICLE").installment(2)
    assert error.value.code == "catalog.unknown_installment"


def test_custom_catalog_parses() -> None:
    catalog = Catalog.from_toml(
        entry_toml()
        + tax_toml(
            "CARE_PREMIUM",
            "[{ period = 1, month = 7, day = 31 }, { period = 2, month = 3, day = 31 }]",
            late_fee_first_period_months="3",
        )
    )
    dog = catalog.get("DOG_LICENSE")
    assert (dog.kind, dog.default_amount, dog.installments) == (Kind.FEE, 3000, ())
    care = catalog.get("CARE_PREMIUM")
    assert care.late_fee_first_period_months == 3
    assert care.installments == (Installment(1, 7, 31), Installment(2, 3, 31))


def test_duplicate_codes_are_refused() -> None:
    assert refused(entry_toml() + entry_toml()) == "catalog.duplicate_code"


@pytest.mark.parametrize(
    "code", ["dog_license", "D", "1DOG", "_DOG", "DOG-LICENSE", "A23456789012345678", "ＤＯＧ"]
)
def test_bad_code_format_is_refused(code: str) -> None:
    text = entry_toml(code=f'"{code}"', revenue_account=f'"4200:{code}"')
    assert refused(text) == "catalog.bad_code"


@pytest.mark.parametrize(
    ("kind", "account"),
    [
        ("fee", "4100:DOG_LICENSE"),  # fee booked as tax revenue
        ("fee", "4200:OTHER"),
        ("fee", "4200"),
        ("fee", "1100:DOG_LICENSE"),
        ("tax", "4200:DOG_LICENSE"),
    ],
)
def test_bad_accounts_are_refused(kind: str, account: str) -> None:
    text = entry_toml(kind=f'"{kind}"', revenue_account=f'"{account}"', default_amount="<drop>")
    assert refused(text) == "catalog.bad_account"


@pytest.mark.parametrize(
    "text",
    [
        entry_toml(name_ja="<drop>"),
        entry_toml(late_fee_aplies="true"),  # typo: unknown field
        entry_toml(name_en='""'),
        entry_toml(kind='"premium"'),
        entry_toml(late_fee_applies='"no"'),
        entry_toml(installments='"none"'),
        entry_toml(installments="[{ period = 1, month = 5, day = 31 }]"),  # fee with schedule
        entry_toml(default_amount="0"),
        entry_toml(default_amount="300.0"),
        entry_toml(default_amount="true"),
        entry_toml(default_amount="100000000"),  # past Stripe's 8 digits
        entry_toml(late_fee_first_period_months="2"),
        entry_toml(late_fee_first_period_months="true"),
        tax_toml(default_amount="300"),  # only fees have a fixed price
        tax_toml(installments="[{ period = 2, month = 5, day = 31 }]"),  # not numbered from 1
        tax_toml(installments="[{ period = 1, month = 13, day = 1 }]"),
        tax_toml(installments="[{ period = 1, month = 5, day = 32 }]"),
        tax_toml(installments="[{ period = 1, month = 5 }]"),
        tax_toml(installments="[{ period = 1, month = 5, day = 31, note = 'x' }]"),
        tax_toml(
            installments=(  # 3月 comes after 4月 in the fiscal year
                "[{ period = 1, month = 3, day = 31 }, { period = 2, month = 4, day = 30 }]"
            )
        ),
        "entries = [1]",
    ],
)
def test_invalid_entries_are_refused(text: str) -> None:
    assert refused(text) == "catalog.invalid_entry"


@pytest.mark.parametrize("text", ["[[entries]\n", "", "entries = []", "[other]\nx = 1\n"])
def test_bad_files_are_refused(text: str) -> None:
    assert refused(text) == "catalog.bad_toml"


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(CatalogError) as error:
        CatalogEntry(
            code="FIXED_ASSET",
            name_ja="固定資産税",
            name_en="Fixed asset tax",
            kind=Kind.TAX,
            revenue_account="4200:FIXED_ASSET",
            late_fee_applies=True,
        )
    assert error.value.code == "catalog.bad_account"
