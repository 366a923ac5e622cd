"""Sans-IO SASL mechanisms: SCRAM-SHA-256, SCRAM-SHA-1 (each also -PLUS, channel-bound) and
PLAIN, and their step results."""

from casper.sasl.plain import parse_plain as parse_plain
from casper.sasl.scram import MECHANISMS as MECHANISMS
from casper.sasl.scram import PLUS_MECHANISMS as PLUS_MECHANISMS
from casper.sasl.scram import ScramCredentials as ScramCredentials
from casper.sasl.scram import ScramServer as ScramServer
from casper.sasl.scram import base_mechanism as base_mechanism
from casper.sasl.scram import derive_credentials as derive_credentials
from casper.sasl.scram import saslprep as saslprep
from casper.sasl.scram import verify_password as verify_password
from casper.sasl.scram_client import ScramClient as ScramClient
from casper.sasl.steps import SASL_CONDITIONS as SASL_CONDITIONS
from casper.sasl.steps import Challenge as Challenge
from casper.sasl.steps import Failure as Failure
from casper.sasl.steps import NeedCredentials as NeedCredentials
from casper.sasl.steps import Step as Step
from casper.sasl.steps import Success as Success
