namespace KtConnect.Engine;

/// <summary>
/// Where KtConnect keeps local state: the journal of OS changes, pid files, logs.
/// <c>KTCONNECT_HOME</c> overrides the default <c>~/.kt</c> (kt-connect's folder, so one machine has one place).
/// </summary>
public static class KtPaths
{
    public const string HomeVariable = "KTCONNECT_HOME";

    public static string Home
    {
        get
        {
            var over = Environment.GetEnvironmentVariable(HomeVariable);
            if (!string.IsNullOrWhiteSpace(over)) return over;
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (string.IsNullOrEmpty(home)) home = Path.GetTempPath();
            return Path.Combine(home, ".kt");
        }
    }

    public static string JournalDirectory => Path.Combine(Home, "journal");
}
