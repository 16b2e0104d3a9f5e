"""Sending the other party of a view elsewhere: Transfer, TransferToVoicemail, PickUp."""
