using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KtConnect.Tests.Unit.Cluster.Recovery;

/// <summary>Makes journal entries look as if written by a process that has since died (a SIGKILLed session).</summary>
internal static class JournalFiles
{
    public static async Task<int> DeadPidAsync()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await p.WaitForExitAsync();
        return p.Id;
    }

    public static async Task SimulateCrashAsync(string directory)
    {
        var dead = await DeadPidAsync();
        foreach (var file in Directory.EnumerateFiles(directory, "*.json"))
        {
            var node = JsonNode.Parse(await File.ReadAllTextAsync(file))!;
            node["OwnerPid"] = dead;
            await File.WriteAllTextAsync(file, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
    }
}
