from tests.support.fixtures import ami_log, pbx, phones, sandbox  # noqa: F401
