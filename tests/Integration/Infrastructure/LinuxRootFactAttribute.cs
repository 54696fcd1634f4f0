using KtConnect.Engine;
using KtConnect.KubeSim.Host;

namespace KtConnect.Tests.Integration;

/// <summary>
/// A fact that needs Linux, root and the named programs. Elsewhere it is skipped with a reason that says
/// exactly what is missing; `.ci/run` installs the programs, and on CI it fails instead of skipping
/// (KTCONNECT_REQUIRE_INTEGRATION=1), so a missing package can never pass as green.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class LinuxRootFactAttribute : FactAttribute
{
    public LinuxRootFactAttribute(params string[] programs)
    {
        var missing = Missing(programs);
        if (missing is not null && Environment.GetEnvironmentVariable("KTCONNECT_REQUIRE_INTEGRATION") != "1")
            Skip = missing;
    }

    internal static string? Missing(string[] programs)
    {
        if (!NetNs.Available) return "needs Linux, root and iproute2";
        var absent = programs.Where(p => !ProcessRunner.IsOnPath(p)).ToArray();
        return absent.Length == 0 ? null : "needs " + string.Join(", ", absent) + " (bash .ci/install-deps installs them)";
    }
}

/// <summary>The theory form of <see cref="LinuxRootFactAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class LinuxRootTheoryAttribute : TheoryAttribute
{
    public LinuxRootTheoryAttribute(params string[] programs)
    {
        var missing = LinuxRootFactAttribute.Missing(programs);
        if (missing is not null && Environment.GetEnvironmentVariable("KTCONNECT_REQUIRE_INTEGRATION") != "1")
            Skip = missing;
    }
}
