"""Telling people things: the words (`messages`), the channels (`mail`, `sms`, `courier`), the
ledger that sends each message once (`notifier`), and the `reclaim dev` outbox."""
