"""What every side shares: settings, domain types, errors, ports and the components behind them."""
