"""Where the shared OWRS corpus is: ../shared/owrs beside the repository, or $OWRS_CORPUS."""
# ruff: noqa: E501 - file paths are long

import os
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("OWRS_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "owrs"))
FILES = sorted(CORPUS.glob("full_utility_rates/**/*.owrs"))

needs_corpus = pytest.mark.skipif(not FILES, reason=f"the OWRS corpus is not at {CORPUS}")

# Files that cannot be imported, checked by hand: what is wrong with each.
MALFORMED = {
    "California/California Water Service Company Antelope Valley - 406/Other/CWSCAV-2017-01-01(2).owrs": "not valid YAML",
    "California/Las Virgenes Municipal Water District - 1566/Older/lvmw-2015-01-01.owrs": "not valid YAML",
    "California/Las Virgenes Municipal Water District - 1566/Older/lvmw-2016-01-01.owrs": "not valid YAML",
    "California/Los Angeles Department of Water and Power - 1665/Older/ladwp-2016-01-01.owrs": "not valid YAML",
    "California/Los Angeles Department of Water and Power - 1665/Older/ladwp-2016-04-01.owrs": "not valid YAML",
    "California/Los Angeles Department of Water and Power - 1665/Older/ladwp-2016-04-15.owrs": "not valid YAML",
    "California/Los Angeles Department of Water and Power - 1665/Older/ladwp-2016-07-01.owrs": "not valid YAML",
    "California/Olivenhain Municipal Water District - 2047/03-31-2018.owrs": "not valid YAML",
    "California/Roseville  City Of - 2457/07-01-2017.owrs": "not valid YAML",
    "California/Santa Monica City of - 2581/smc-2018-01-03.owrs": "not valid YAML",
    "California/Western Municipal Water District - 3150/01-01-2018.owrs": "not valid YAML",
    # FIRE_SERVICE has charges but no bill formula.
    "California/East Bay Municipal Utility District - 891/2016-07-01.owrs": "class FIRE_SERVICE, field bill: the class has no bill formula",
    # bill's values are a list of one-key maps, not a map keyed by the data's values.
    "California/San Jose Water Company - 2541/sjwc-2017-01-01.owrs": "field bill: a map needs depends_on and values",
    # "flat_rate*usage_ccf flat_rate:4.1165": a field pasted into a formula.
    "California/Pleasanton  City Of - 2222/Pleasanton-2017-01-15.owrs": "field commodity_charge: cannot read formula",
    # A key given twice with different values: YAML keeps the last silently, so rates were lost.
    # Two rate_structure sections (a file waiting to be combined): the first one's classes.
    "California/Apple Valley Ranchos Water Company - 379/Need to combine files/AVRWC-2017-01-01_2.owrs": "the key 'rate_structure' is given twice",
    # fixed_drought_surcharge: 0, then a map by meter size.
    "California/Mammoth Community Water District - 1735/04-01-2018.owrs": "the key 'fixed_drought_surcharge' is given twice",
    # A second charge's tier starts and prices under the commodity charge's names (the last
    # ones replaced the commodity prices).
    "California/Montecito Water District - 1871/09-01-2017.owrs": "the key 'tier_prices_commodity' is given twice",
    "California/Santa Cruz  City Of - 2574/07-01-2017.owrs": "the key 'tier_prices_commodity' is given twice",
    "California/Trabuco Canyon Water District - 2918/01-01-2018.owrs": "the key 'tier_prices_commodity' is given twice",
    # Classes whose bill cannot be computed for any customer (found by the trial computation).
    # flat_rate: ["1.785*usage_ccf"], a list holding a formula, where a number is needed.
    "California/Burbank City of - 270/Older/bc-2016-07-01.owrs": "class RESIDENTIAL_MULTI, field commodity_charge: cannot compute 'flat_rate*usage_ccf'",
    # RECLAIMED: "budget: Tiered" with a tier start of 101% (a share of a budget it does not have).
    "California/Corona City Of - 713/CCO-2014-02-01.owrs": "class RECLAIMED, field budget: tier start '101%' is a share of a budget",
    # tier_rates where tier_prices is meant.
    "California/San Gabriel Valley Fontana Water Company - 18/sgvf-2017-01-07.owrs": "class RESIDENTAL_SINGLE_CONSERVATION, field commodity_charge: is Tiered but the class has no tier_prices",
}


def relative(path: Path) -> str:
    return str(path.relative_to(CORPUS / "full_utility_rates"))
