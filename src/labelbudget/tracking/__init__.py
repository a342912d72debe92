"""What tracks a run: its selection report and its experiment tracker."""
