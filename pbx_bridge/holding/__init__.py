"""Call control: OnHold/OffHold and Park/UnPark (issue 14)."""
