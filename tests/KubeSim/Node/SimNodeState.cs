using System.Text.Json;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// state.json in the node's state directory: every namespace, /etc/netns directory, root-namespace
/// interface and process the node created, written before each is created, so `stop` (or a later run
/// after a crash) can remove them with <see cref="SimNode.StopAsync(string)"/>.
/// </summary>
public sealed class SimNodeState
{
    public const string FileName = "state.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string Id { get; set; } = "";

    public List<string> NetworkNamespaces { get; set; } = [];

    public List<string> EtcNetNsDirectories { get; set; } = [];

    public List<string> RootInterfaces { get; set; } = [];

    public List<int> ProcessIds { get; set; } = [];

    public static SimNodeState? Load(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, FileName);
        return File.Exists(path) ? JsonSerializer.Deserialize<SimNodeState>(File.ReadAllText(path), Json) : null;
    }

    public void Save(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, FileName);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Json));
        File.Move(tmp, path, overwrite: true);
    }
}
